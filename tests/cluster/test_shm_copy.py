"""Copies between two workers of one host go through a /dev/shm file (not the TLS comm), and
fall back to the comm when that fails, leaving no file behind; stale files go at worker start."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from gswarm_jupyter.cluster.runtime import shmcopy, shmfiles
from gswarm_jupyter.cluster.runtime.cluster import ClusterConfig, ClusterRuntime
from gswarm_jupyter.cluster.runtime.executor import TaskExecutor
from gswarm_jupyter.cluster.runtime.signals import TaskSignal
from gswarm_jupyter.cluster.storage.chunkstore import get_chunk, put_chunk
from gswarm_jupyter.cluster.storage.datapool import DataPool
from gswarm_jupyter.core.chunks import ChunkRegistry
from gswarm_jupyter.core.data_api import ChunkTransfer
from gswarm_jupyter.core.db import Database
from gswarm_jupyter.core.nodes import Node
from gswarm_jupyter.core.tasks import TaskQueue

SIZE = 3 * 2**20 + 17


@contextlib.asynccontextmanager
async def pool_on_two_workers(tmp_path: Path) -> AsyncIterator[DataPool]:
    runtime = ClusterRuntime(ClusterConfig(local_nodes=2, local_processes=False,
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


async def test_a_same_host_copy_goes_through_shared_memory_and_leaves_no_file(tmp_path):
    async with pool_on_two_workers(tmp_path) as pool:
        nodes = pool.runtime.nodes
        assert nodes.get("node1").same_host(nodes.get("node2"))
        await transferred(pool, "chunk-shm-1")
        assert await pool.runtime.run_on("node2", shmcopy.copies_received, timeout=30) == 1
        assert handoffs(pool) == []


SEEN: list[Path] = []  # handoff files the failing target saw (module level: shared in-process)


def failing_import(handoff: dict[str, Any], *args: Any) -> dict[str, Any]:
    """A target that finds the file (private, 0600) and then fails before it has the bytes."""
    path = Path(handoff["path"])
    assert path.exists() and path.stat().st_mode & 0o777 == 0o600
    SEEN.append(path)
    return {"missed": "forced"}


async def test_a_failed_shared_memory_copy_falls_back_and_leaves_no_file(tmp_path, monkeypatch):
    seen = SEEN
    seen.clear()
    monkeypatch.setattr(shmcopy, "import_copy", failing_import)  # in-process workers see it
    async with pool_on_two_workers(tmp_path) as pool:
        await transferred(pool, "chunk-shm-2")  # completed, right bytes: through the comm
        assert len(seen) == 1 and not seen[0].exists()
        assert await pool.runtime.run_on("node2", shmcopy.copies_received, timeout=30) == 0
        assert handoffs(pool) == []


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
