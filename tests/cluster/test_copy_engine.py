"""The copy engine's rules, against a real Dask cluster (two in-process workers): the last copy,
room and eviction order, and the table kept true after a restart. Read as its specification."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

from gswarm_jupyter.cluster.runtime.cluster import ClusterConfig, ClusterRuntime
from gswarm_jupyter.cluster.runtime.executor import TaskExecutor
from gswarm_jupyter.cluster.runtime.signals import TaskSignal
from gswarm_jupyter.cluster.storage.chunkstore import get_chunk, put_chunk
from gswarm_jupyter.cluster.storage.datapool import CHUNKS
from gswarm_jupyter.cluster.storage.engine import CopyEngine
from gswarm_jupyter.cluster.storage.modelstore import MODELS
from gswarm_jupyter.core.chunks import ChunkRegistry
from gswarm_jupyter.core.db import Database
from gswarm_jupyter.core.errors import Conflict, InsufficientMemory
from gswarm_jupyter.core.modelregistry import ModelRegistry
from gswarm_jupyter.core.names import DeviceRef
from gswarm_jupyter.core.tasks import TaskQueue


@contextlib.asynccontextmanager
async def real_cluster(tmp_path) -> AsyncIterator[tuple[ClusterRuntime, TaskExecutor, Database]]:
    """Two in-process Dask workers (node1, node2), the server's queue and database."""
    runtime = ClusterRuntime(ClusterConfig(local_nodes=2, local_processes=False,
                                           data_dir=tmp_path, worker_memory_limit="8GiB"))
    # In-process workers measure the test process, which earlier tests (torch, JAX models) grew
    # past 80% of a small limit: Dask then pauses them and no task runs.
    db = Database(tmp_path / "gswarm.sqlite3")
    db.migrate()
    executor = TaskExecutor(TaskQueue(2), runtime, None)
    await runtime.start()
    try:
        await runtime.wait_ready(120)
        yield runtime, executor, db
    finally:
        await runtime.stop()
        db.close()


def chunk_engine(cluster) -> tuple[CopyEngine, ChunkRegistry]:
    runtime, executor, db = cluster
    registry = ChunkRegistry(db)
    return CopyEngine(CHUNKS, registry.copies, registry.exists, runtime, executor), registry


async def stored_chunk(engine: CopyEngine, registry: ChunkRegistry, chunk_id: str,
                       where: list[tuple[str, str]]) -> None:
    """A chunk of 1 KiB with a real copy on each of `where`."""
    registry.create(chunk_id, chunk_type="input", fmt="bytes", size=1024, shape=None,
                    dtype=None, created_by=None)
    for node, device in where:
        stored = await engine.runtime.run_on(node, put_chunk, chunk_id, device, bytes(1024),
                                             TaskSignal(f"put-{chunk_id}"), timeout=30)
        registry.copies.put(chunk_id, node, device, "available", worker=stored["worker"])


async def test_the_last_ready_copy_never_goes_but_another_does_with_its_bytes(tmp_path):
    async with real_cluster(tmp_path) as cluster:
        engine, registry = chunk_engine(cluster)
        await stored_chunk(engine, registry, "chunk-a", [("node1", "dram"), ("node2", "disk")])

        await engine.remove_copy("chunk-a", "node1", "dram", reason="dropped")
        assert [(r["node"], r["device"]) for r in registry.copies.of("chunk-a")] == [
            ("node2", "disk")]
        with pytest.raises(Exception):  # the bytes went with the row
            await engine.runtime.run_on("node1", get_chunk, "chunk-a", "dram", timeout=30)

        with pytest.raises(Conflict, match="last copy of chunk chunk-a"):
            await engine.remove_copy("chunk-a", "node2", "disk", reason="dropped")
        assert len(registry.copies.of("chunk-a")) == 1
        data = await engine.runtime.run_on("node2", get_chunk, "chunk-a", "disk", timeout=30)
        assert np.asarray(data).nbytes == 1024


async def test_a_copy_being_written_is_not_a_ready_copy(tmp_path):
    async with real_cluster(tmp_path) as cluster:
        engine, registry = chunk_engine(cluster)
        await stored_chunk(engine, registry, "chunk-b", [("node1", "disk")])
        registry.copies.put("chunk-b", "node2", "dram", "copying", task_id="transfer-x-1")
        with pytest.raises(Conflict):
            await engine.remove_copy("chunk-b", "node1", "disk", reason="dropped")


async def test_room_is_what_the_node_reports_free(tmp_path):
    async with real_cluster(tmp_path) as cluster:
        engine, _ = chunk_engine(cluster)
        engine.check_room(DeviceRef("node1", "dram"), 1024)
        with pytest.raises(InsufficientMemory) as info:
            engine.check_room(DeviceRef("node1", "dram"), 16 * 2**30)  # over the 8 GiB worker limit
        assert info.value.details["device"] == "node1:dram"
        assert "evict" not in info.value.message  # chunks offer no eviction


async def test_eviction_frees_least_recently_used_copies_kept_elsewhere_first(tmp_path):
    async with real_cluster(tmp_path) as cluster:
        runtime, executor, db = cluster
        registry = ModelRegistry(db)
        engine = CopyEngine(MODELS, registry.copies, registry.exists, runtime, executor)
        for name in ("old", "recent", "only"):
            registry.create(name, source_url="builtin://mlp", model_type="mlp", metadata={})
            registry.copies.put(name, "node1", "dram", "ready", size=100, worker=None)
        for name in ("old", "recent"):  # kept elsewhere too: evictable
            registry.copies.put(name, "node2", "disk", "ready", size=100)
        now = time.time()
        for name, used in (("old", now - 100), ("recent", now), ("only", now - 200)):
            db.execute("UPDATE model_locations SET last_used = ? WHERE name = ? AND device = ?",
                       (used, name, "dram"))
        target = DeviceRef("node1", "dram")

        with pytest.raises(InsufficientMemory, match="ask with evict"):
            await engine.make_room("big", target, 150, evict=False, capacity=350)
        await engine.make_room("big", target, 150, evict=True, capacity=350)
        on_dram = {r["name"] for r in registry.copies.on_device("node1", "dram")}
        assert on_dram == {"recent", "only"}  # "only" is older but its last copy: it stays
        with pytest.raises(InsufficientMemory):  # nothing evictable is left to free 300 bytes
            await engine.make_room("big", target, 300, evict=True, capacity=350)


async def test_after_a_restart_the_table_is_made_true_again(tmp_path):
    async with real_cluster(tmp_path) as cluster:
        engine, registry = chunk_engine(cluster)
        await stored_chunk(engine, registry, "chunk-c", [("node1", "disk")])
        # rows a previous server left: a memory copy of a worker that is gone, a copy being written
        # by a task that no longer exists
        registry.copies.put("chunk-c", "node1", "dram", "available", worker="tls://127.0.0.1:1")
        registry.copies.put("chunk-c", "node2", "disk", "copying", task_id="transfer-gone-1")

        forgotten = engine.recover()
        engine.reconcile()

        assert [(loc["node"], loc["device"], task) for loc, task in forgotten] == [
            ("node2", "disk", None)]
        assert {(r["node"], r["device"], r["status"]) for r in registry.copies.of("chunk-c")} == {
            ("node1", "disk", "available"), ("node1", "dram", "lost")}
