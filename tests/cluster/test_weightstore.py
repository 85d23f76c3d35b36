"""The worker-side weight store, driven directly (no Dask): tiers, checksums, staging, downloads."""

from __future__ import annotations

import errno
import hashlib
import os

import numpy as np
import pytest

from gswarm_jupyter.cluster.runtime import signals
from gswarm_jupyter.cluster.runtime.signals import TaskCancelled, TaskSignal
from gswarm_jupyter.cluster.storage.weightstore import WeightStore
from gswarm_jupyter.core.errors import InvalidRequest, NetworkError, NotFound, TaskFailed
from gswarm_jupyter.core.fetchpolicy import FetchPolicy
from gswarm_jupyter.testing import LOOPBACK_ONLY
from gswarm_kernels import checkpoint_bytes, init_params, parse_builtin_url

from ..http_source import Source


LOOPBACK = FetchPolicy(LOOPBACK_ONLY["fetch_allow"], LOOPBACK_ONLY["fetch_deny"])


def mlp_bytes(seed: int = 0) -> bytes:
    spec = parse_builtin_url(f"builtin://mlp?in=8&hidden=16&out=4&seed={seed}")
    return checkpoint_bytes(spec.arch, spec.config, init_params(*spec))


@pytest.fixture
def store(tmp_path) -> WeightStore:
    return WeightStore(tmp_path / "models")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_every_tier_holds_the_same_bytes(store):
    data = mlp_bytes()
    stored = store.write("m", 1, "disk", data, TaskSignal("t-disk"))
    assert stored["checksum"] == sha(data) and stored["size"] == len(data)
    assert stored["format"] == "safetensors" and stored["metadata"]["arch"] == "mlp"
    assert store.path("m", 1, "safetensors").read_bytes() == data
    store.write("m", 1, "dram", store.read("m", "disk"), TaskSignal("t-dram"))
    store.write("m", 1, "vgpu0", store.read("m", "dram"), TaskSignal("t-vgpu"))
    for device in ("disk", "dram", "vgpu0"):
        assert store.checksum("m", device) == sha(data)
    assert store.copies() == {"m": ["disk", "dram", "vgpu0"]}


def test_memory_params_are_views_of_the_copy(store):
    data = mlp_bytes()
    store.write("m", 1, "dram", data, TaskSignal("t"))
    arch, config, params = store.load("m", "dram")
    assert arch == "mlp" and config["hidden"] == [16]
    buffer = store.memory[("m", "dram")].buffer
    assert all(np.shares_memory(v, buffer) for v in params.values())
    expected = init_params("mlp", config, 0)
    assert all(np.array_equal(params[k], expected[k]) for k in expected)
    _, _, tensors = store.tensors("m", "dram")
    assert all(np.array_equal(tensors[k].numpy(), expected[k]) for k in expected)


def test_load_from_disk_and_unknown_copies(store):
    store.write("m", 1, "disk", mlp_bytes(3), TaskSignal("t"))
    arch, config, params = store.load("m", "disk")
    assert np.array_equal(params["layers.0.weight"], init_params("mlp", config, 3)["layers.0.weight"])
    with pytest.raises(NotFound):
        store.load("m", "dram")
    with pytest.raises(NotFound):
        store.read("other", "disk")


def test_cancelled_write_leaves_nothing(store):
    signal = TaskSignal("t-cancel")
    signals.flag_cancelled(signal.task_id)
    try:
        for device in ("disk", "dram"):
            with pytest.raises(TaskCancelled):
                store.write("m", 1, device, mlp_bytes(), signal)
    finally:
        signal.done()
    assert not store.has("m", "disk") and not store.has("m", "dram")
    assert list(store.folder.rglob("*.part")) == []


def test_checksum_mismatch_leaves_nothing(store):
    for device in ("disk", "dram"):
        with pytest.raises(TaskFailed, match="checksum mismatch"):
            store.write("m", 1, device, mlp_bytes(), TaskSignal("t"), expect_checksum="0" * 64)
    assert store.copies() == {} and list(store.folder.rglob("*.part")) == []


def test_foreign_bytes_are_refused(store):
    with pytest.raises(InvalidRequest, match="format"):
        store.write("m", 1, "disk", b"not a checkpoint at all", TaskSignal("t"))
    import safetensors.numpy

    bare = safetensors.numpy.save({"w": np.zeros(3, np.float32)})  # no arch metadata
    with pytest.raises(InvalidRequest, match="arch"):
        store.write("m", 1, "dram", bare, TaskSignal("t"))


def test_torchscript_is_recognised_and_loaded(store, tmp_path):
    import io

    import torch

    module = torch.jit.script(torch.nn.Linear(3, 2))
    buf = io.BytesIO()
    torch.jit.save(module, buf)
    data = buf.getvalue()
    stored = store.write("ts", 1, "disk", data, TaskSignal("t"))
    assert stored["format"] == "torchscript" and stored["checksum"] == sha(data)
    assert store.path("ts", 1, "torchscript").exists()
    store.write("ts", 1, "dram", store.read("ts", "disk"), TaskSignal("t2"))
    arch, _, params = store.load("ts", "dram")
    assert arch == "torchscript"
    assert np.array_equal(params["weight"], module.weight.detach().numpy())


def test_download_resumes_after_a_dropped_connection(store):
    data = mlp_bytes()
    with Source() as src:
        src.files["m.safetensors"] = data
        src.break_after["m.safetensors"] = 300
        stored = store.download("m", 1, "disk", src.url("m.safetensors"), TaskSignal("t"),
                                policy=LOOPBACK, expect_checksum=sha(data))
        ranges = [r["range"] for r in src.requests]
    assert stored["checksum"] == sha(data)
    assert ranges[0] is None and ranges[-1] == "bytes=300-"
    assert store.path("m", 1, "safetensors").read_bytes() == data
    assert list(store.folder.rglob("*.part")) == []


def test_download_checksum_mismatch_and_missing_source_leave_nothing(store):
    data = mlp_bytes()
    with Source() as src:
        src.files["m.safetensors"] = data
        with pytest.raises(TaskFailed, match="checksum mismatch"):
            store.download("m", 1, "dram", src.url("m.safetensors"), TaskSignal("t"),
                           policy=LOOPBACK, expect_checksum=sha(b"other"))
        with pytest.raises(NetworkError, match="404"):
            store.download("m", 1, "disk", src.url("gone.safetensors"), TaskSignal("t2"),
                           policy=LOOPBACK)
    assert store.copies() == {} and list(store.folder.rglob("*.part")) == []


def write_v2(store, how: str, data: bytes) -> None:
    """A new version of `m` on disk, written from bytes or downloaded."""
    if how == "write":
        store.write("m", 2, "disk", data, TaskSignal("t-v2"))
        return
    with Source() as src:
        src.files["m.safetensors"] = data
        store.download("m", 2, "disk", src.url("m.safetensors"), TaskSignal("t-v2"),
                       policy=LOOPBACK)


@pytest.mark.parametrize("how", ["write", "download"])
def test_the_old_version_stays_readable_until_the_new_one_is_in_place(store, monkeypatch, how):
    old, new = mlp_bytes(0), mlp_bytes(1)
    store.write("m", 1, "disk", old, TaskSignal("t-v1"))
    rename = os.replace
    seen_at_rename = []

    def watched_rename(src, dst):
        seen_at_rename.append(store.read("m", "disk").tobytes())
        rename(src, dst)

    monkeypatch.setattr(os, "replace", watched_rename)
    write_v2(store, how, new)
    assert seen_at_rename == [old]
    assert store.read("m", "disk").tobytes() == new
    assert sorted(p.name for p in (store.folder / "m").iterdir()) == ["v2.safetensors"]


@pytest.mark.parametrize("how", ["write", "download"])
def test_a_failed_rename_leaves_the_old_version_whole(store, monkeypatch, how):
    old = mlp_bytes(0)
    store.write("m", 1, "disk", old, TaskSignal("t-v1"))

    def failing_rename(src, dst):
        raise OSError(errno.EIO, "input/output error", str(dst))

    monkeypatch.setattr(os, "replace", failing_rename)
    with pytest.raises(OSError, match="input/output"):
        write_v2(store, how, mlp_bytes(1))
    monkeypatch.undo()
    assert store.read("m", "disk").tobytes() == old
    assert sorted(p.name for p in (store.folder / "m").iterdir()) == ["v1.safetensors"]
