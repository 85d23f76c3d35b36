"""The worker-side chunk store, directly (the Dask path is exercised by the server tests)."""

from __future__ import annotations

import numpy as np
import pytest

from gswarm_jupyter.cluster.storage.chunkstore import ChunkStore, as_byte_array
from gswarm_jupyter.cluster.runtime.signals import TaskCancelled, TaskSignal, flag_cancelled


def test_write_read_delete_on_dram_and_disk(tmp_path):
    store = ChunkStore(tmp_path / "chunks")
    array = np.arange(12, dtype=np.int16).reshape(3, 4)
    assert store.write("chunk-a", "dram", array, TaskSignal("t1"), ([3, 4], "int16")) == 24
    kept = store.memory[("chunk-a", "dram")]
    assert kept.dtype == np.int16 and kept.shape == (3, 4) and np.array_equal(kept, array)
    assert store.read("chunk-a", "dram").tobytes() == array.tobytes()
    assert store.write("chunk-a", "disk", b"hello", TaskSignal("t2")) == 5
    assert (tmp_path / "chunks" / "chunk-a.bin").read_bytes() == b"hello"
    assert store.read("chunk-a", "disk").tobytes() == b"hello"
    assert store.delete("chunk-a", "disk") and not store.has("chunk-a", "disk")
    assert store.delete("chunk-a", "dram") and not store.delete("chunk-a", "dram")


@pytest.mark.parametrize("device", ["dram", "disk"])
def test_a_cancelled_write_leaves_nothing(tmp_path, device, monkeypatch):
    import gswarm_jupyter.cluster.storage.workerstore as ws

    monkeypatch.setattr(ws, "BLOCK", 1024)
    store = ChunkStore(tmp_path / "chunks")
    signal = TaskSignal("task-cancel-1")
    seen = []

    def progress(percent: float) -> None:  # the server's cancel arrives midway
        seen.append(percent)
        if len(seen) == 3:
            flag_cancelled(signal.task_id)

    monkeypatch.setattr(TaskSignal, "progress", lambda self, p: progress(p))
    with pytest.raises(TaskCancelled):
        store.write("chunk-b", device, b"x" * 10_000, signal)
    signal.done()
    assert len(seen) == 3
    assert not store.has("chunk-b", device)
    assert list((tmp_path / "chunks").iterdir()) == []


def test_stale_partial_files_go_when_a_worker_starts(tmp_path):
    folder = tmp_path / "chunks"
    folder.mkdir()
    (folder / "chunk-c.task-1.part").write_bytes(b"half")
    (folder / "chunk-d.bin").write_bytes(b"whole")
    store = ChunkStore(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["chunk-d.bin"]
    assert store.has("chunk-d", "disk")


def test_a_write_cancelled_before_it_starts_stores_nothing(tmp_path):
    store = ChunkStore(tmp_path / "chunks")
    signal = TaskSignal("task-slow-1")
    flag_cancelled(signal.task_id)
    with pytest.raises(TaskCancelled):
        store.write("chunk-e", "dram", b"y" * 100_000, signal, bandwidth_limit=10_000)
    signal.done()
    assert not store.has("chunk-e", "dram")


def test_as_byte_array_views_without_copying():
    array = np.ones((4, 4), dtype=np.float64)
    view = as_byte_array(array)
    assert view.dtype == np.uint8 and view.nbytes == array.nbytes
    assert np.shares_memory(view, array)
    assert as_byte_array(b"ab").tobytes() == b"ab"
    with pytest.raises(TypeError):
        as_byte_array(3.5)
