"""Copies between two workers of one host skip the (TLS) comm: the target reads the source's
memory (`memread`), else a /dev/shm file (`shmcopy`); each way falls back to the next when it
fails, leaving no pin and no file behind; stale files go at worker start."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gswarm_jupyter.cluster.runtime import memread, shmcopy, shmfiles
from gswarm_jupyter.cluster.runtime.cluster import ClusterConfig, ClusterRuntime
from gswarm_jupyter.cluster.runtime.executor import TaskExecutor
from gswarm_jupyter.cluster.runtime.signals import TaskCancelled, TaskSignal, flag_cancelled
from gswarm_jupyter.cluster.storage.chunkstore import get_chunk, put_chunk
from gswarm_jupyter.cluster.storage.datapool import CHUNKS, DataPool
from gswarm_jupyter.core.chunks import ChunkRegistry
from gswarm_jupyter.core.data_api import ChunkTransfer
from gswarm_jupyter.core.db import Database
from gswarm_jupyter.core.nodes import Node
from gswarm_jupyter.core.tasks import TaskQueue

SIZE = 3 * 2**20 + 17


@contextlib.asynccontextmanager
async def pool_on_two_workers(tmp_path: Path, processes: bool = False
                              ) -> AsyncIterator[DataPool]:
    runtime = ClusterRuntime(ClusterConfig(local_nodes=2, local_processes=processes,
                                           data_dir=tmp_path, worker_memory_limit="8GiB"))
    db = Database(tmp_path / "gswarm.sqlite3")
    db.migrate()
    executor = TaskExecutor(TaskQueue(2), runtime, None)
    pool = DataPool(ChunkRegistry(db), runtime, executor)
    await runtime.start()
    await executor.start()
    pool.start()
    try:
        await runtime.wait_ready(120)
        while not executor._ready:
            await asyncio.sleep(0.05)
        yield pool
    finally:
        await executor.stop()
        await runtime.stop()
        db.close()


async def transferred(pool: DataPool, chunk_id: str) -> np.ndarray:
    """A chunk made on node1:dram, transferred to node2:dram; answers node2's bytes."""
    payload = np.random.default_rng(3).integers(0, 256, SIZE, dtype=np.uint8)
    stored = await pool.runtime.run_on("node1", put_chunk, chunk_id, "dram", payload.copy(),
                                       TaskSignal(f"put-{chunk_id}"), timeout=30)
    pool.registry.create(chunk_id, chunk_type="input", fmt="bytes", size=SIZE, shape=None,
                         dtype=None, created_by=None)
    pool.registry.copies.put(chunk_id, "node1", "dram", "available", worker=stored["worker"])
    task = pool.transfer(chunk_id, ChunkTransfer(target_node="node2", target_device="dram"))
    done = await pool.executor.wait(task.task_id, timeout=120)
    assert done.status == "completed", done.error
    got = await pool.runtime.run_on("node2", get_chunk, chunk_id, "dram", timeout=30)
    assert np.array_equal(np.asarray(got), payload)
    return payload


def handoffs(pool: DataPool) -> list[Path]:
    store = pool.runtime.nodes.get("node1").report["store"]
    return list(shmfiles.SHM.glob(shmfiles.prefix(store) + "*"))


async def received(pool: DataPool) -> dict[str, int]:
    """How many copies node2 took each way, and how many exports node1 still pins."""
    run_on = pool.runtime.run_on
    return {"memread": await run_on("node2", memread.copies_received, timeout=30),
            "shmcopy": await run_on("node2", shmcopy.copies_received, timeout=30),
            "pinned": await run_on("node1", memread.pinned, timeout=30)}


def ptrace_allowed() -> bool:
    """Whether this kernel lets a process read a sibling's memory (no Yama, or its scope 0)."""
    scope = Path("/proc/sys/kernel/yama/ptrace_scope")
    return not scope.exists() or scope.read_text().strip() == "0"


async def test_a_copy_between_two_worker_processes_reads_the_sources_memory(tmp_path):
    async with pool_on_two_workers(tmp_path, processes=True) as pool:
        nodes = pool.runtime.nodes
        assert nodes.get("node1").same_host(nodes.get("node2"))
        assert nodes.get("node1").report["pid"] not in (os.getpid(), nodes.get("node2").report["pid"])
        await transferred(pool, "chunk-mem-1")
        way = {"memread": 1, "shmcopy": 0} if ptrace_allowed() else {"memread": 0, "shmcopy": 1}
        assert await received(pool) == {**way, "pinned": 0}
        assert handoffs(pool) == []


REFUSED: list[dict[str, Any]] = []  # handoffs the refusing target saw


def refused_read(handoff: dict[str, Any], *args: Any) -> dict[str, Any]:
    """A target the kernel refuses the source's memory (Yama's ptrace_scope, a seccomp filter)."""
    assert memread.pinned() == 1  # the source holds its bytes while the target reads
    REFUSED.append(handoff)
    return {"missed": "forced", "refused": True}


SEEN: list[Path] = []  # handoff files the failing target saw (module level: shared in-process)


def failing_import(handoff: dict[str, Any], *args: Any) -> dict[str, Any]:
    """A target that finds the file (private, 0600) and then fails before it has the bytes."""
    path = Path(handoff["path"])
    assert path.exists() and path.stat().st_mode & 0o777 == 0o600
    SEEN.append(path)
    return {"missed": "forced"}


async def test_a_refused_read_goes_by_a_file_and_is_not_tried_again_between_those_workers(
        tmp_path, monkeypatch):
    REFUSED.clear()
    monkeypatch.setattr(memread, "import_copy", refused_read)  # in-process workers see it
    async with pool_on_two_workers(tmp_path) as pool:
        await transferred(pool, "chunk-shm-1")
        assert await received(pool) == {"memread": 0, "shmcopy": 1, "pinned": 0}
        await transferred(pool, "chunk-shm-3")
        assert len(REFUSED) == 1  # the second copy went straight to the file
        assert await received(pool) == {"memread": 0, "shmcopy": 2, "pinned": 0}
        assert handoffs(pool) == []


async def test_a_file_export_that_ends_after_its_copy_was_given_up_leaves_none(tmp_path):
    async with pool_on_two_workers(tmp_path) as pool:
        await transferred(pool, "chunk-shm-4")
        run_on = pool.runtime.run_on
        assert not await run_on("node1", shmcopy.release_copy, "tok-late", timeout=30)
        late = await run_on("node1", shmcopy.export_copy, CHUNKS.read, "chunk-shm-4", "dram",
                            "tok-late", timeout=30)
        assert "given up" in late["missed"] and handoffs(pool) == []


async def test_when_both_same_host_ways_fail_the_comm_carries_it_and_nothing_is_left(
        tmp_path, monkeypatch):
    seen = SEEN
    seen.clear()
    monkeypatch.setattr(memread, "import_copy", refused_read)
    monkeypatch.setattr(shmcopy, "import_copy", failing_import)
    async with pool_on_two_workers(tmp_path) as pool:
        await transferred(pool, "chunk-shm-2")  # completed, right bytes: through the comm
        assert len(seen) == 1 and not seen[0].exists()
        assert await received(pool) == {"memread": 0, "shmcopy": 0, "pinned": 0}
        assert handoffs(pool) == []


def test_a_read_copies_every_block_and_a_refused_one_says_why():
    source = np.random.default_rng(5).integers(0, 256, 3 * 1024 + 7, dtype=np.uint8)
    signal = TaskSignal("read-blocks")
    dest = np.empty_like(source)
    original = memread.BLOCK
    try:
        memread.BLOCK = 1024  # four calls, the last one short
        assert memread.read_into(dest, os.getpid(), source.ctypes.data, signal) is None
    finally:
        memread.BLOCK = original
    assert np.array_equal(dest, source)
    flag_cancelled("read-cancelled")
    with pytest.raises(TaskCancelled):  # checked before each block
        memread.read_into(dest, os.getpid(), source.ctypes.data, TaskSignal("read-cancelled"))
    gone = 2**22 + 12345  # above the kernel's largest pid: no such process
    missed = memread.read_into(np.empty(16, np.uint8), gone, source.ctypes.data, signal)
    assert missed is not None and str(gone) in missed.why and "No such process" in missed.why
    assert not missed.refused  # a process gone, not the kernel saying no


def test_a_pin_holds_the_bytes_until_its_token_is_released():
    kept = {"k": np.arange(4096, dtype=np.uint8)}
    handoff = memread.export_copy(lambda key, device: kept.pop(key), "k", "dram", "tok-1")
    assert handoff["pid"] == os.getpid() and handoff["size"] == 4096 and memread.pinned() == 1
    dest = np.empty(4096, np.uint8)  # the store let its copy go; the pin still holds the bytes
    assert memread.read_into(dest, handoff["pid"], handoff["address"], TaskSignal("pin")) is None
    assert np.array_equal(dest, np.arange(4096, dtype=np.uint8))
    assert memread.release_copy("tok-1") and memread.pinned() == 0
    assert not memread.release_copy("tok-1")


def test_an_export_that_ends_after_its_copy_was_given_up_pins_nothing():
    assert not memread.release_copy("tok-late")  # the server gave the copy up first
    late = memread.export_copy(lambda key, device: np.zeros(64, np.uint8), "k", "dram", "tok-late")
    assert "given up" in late["missed"] and memread.pinned() == 0


def test_only_the_process_that_exported_is_read():
    kept = np.arange(64, dtype=np.uint8)
    handoff = memread.export_copy(lambda key, device: kept, "k", "dram", "tok-2")
    try:
        for started in (handoff["started"] - 1, None):  # its pid, another process's life
            other = {**handoff, "started": started}
            assert "not the source" in memread.import_copy(
                other, lambda *a: {"written": True}, "k", "dram", TaskSignal("other"))["missed"]
    finally:
        memread.release_copy("tok-2")


def test_stale_files_of_this_node_go_and_others_stay(tmp_path):
    mine = shmfiles.SHM / f"{shmfiles.prefix(tmp_path / 'node1')}stale"
    other = shmfiles.SHM / f"{shmfiles.prefix(tmp_path / 'node2')}stale"
    try:
        mine.write_bytes(b"x")
        other.write_bytes(b"x")
        assert shmfiles.sweep(tmp_path / "node1") == 1
        assert not mine.exists() and other.exists()
    finally:
        mine.unlink(missing_ok=True)
        other.unlink(missing_ok=True)


def test_hosts_are_the_same_only_when_host_and_boot_match():
    def node(host: str, boot: str | None) -> Node:
        return Node("n", f"tls://{host}:1", host, 0.0, report={"hostname": "h", "boot_id": boot})

    assert node("127.0.0.1", "b1").same_host(node("127.0.0.1", "b1"))
    assert not node("127.0.0.1", "b1").same_host(node("127.0.0.1", "b2"))  # two containers
    assert not node("127.0.0.1", None).same_host(node("127.0.0.1", None))  # unknown: not same
    assert not node("127.0.0.1", "b1").same_host(node("127.0.0.2", "b1"))
