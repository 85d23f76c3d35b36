"""An in-process gswarm cluster for benchmarks: the server's runtime, task executor and data pool
over two real worker processes, without the HTTP layer."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from gswarm_jupyter.cluster.storage.datapool import DataPool
from gswarm_jupyter.cluster.runtime.executor import TaskExecutor
from gswarm_jupyter.cluster.runtime.cluster import ClusterConfig, ClusterRuntime
from gswarm_jupyter.core.chunks import ChunkRegistry
from gswarm_jupyter.core.db import Database
from gswarm_jupyter.core.tasks import TaskQueue, limit_per_thread
from gswarm_jupyter.core.taskstore import TaskStore


@dataclass
class Swarm:
    runtime: ClusterRuntime
    executor: TaskExecutor
    pool: DataPool
    db: Database


@contextlib.asynccontextmanager
async def swarm(nodes: int = 2, max_concurrent: int | None = None) -> AsyncIterator[Swarm]:
    """A started cluster of `nodes` worker processes with the server's queue and data pool; the
    queue's limit is the server's default (per worker thread) unless `max_concurrent` is given."""
    with tempfile.TemporaryDirectory(prefix="gswarm-bench-") as tmp:
        data_dir = Path(tmp)
        runtime = ClusterRuntime(
            ClusterConfig(local_nodes=nodes, worker_memory_limit=None, local_processes=True,
                          data_dir=data_dir)
        )
        db = Database(data_dir / "gswarm.sqlite3")
        db.migrate()
        store = TaskStore(db)
        limit = max_concurrent or limit_per_thread(runtime.nodes.threads)
        executor = TaskExecutor(TaskQueue(limit, journal=store.record_new), runtime, store)
        pool = DataPool(ChunkRegistry(db), runtime, executor)
        await runtime.start()
        await executor.start()
        pool.start()
        await runtime.wait_ready(timeout=120)
        while not executor._ready:  # the executor starts dispatching once it saw the cluster
            await asyncio.sleep(0.05)
        try:
            yield Swarm(runtime, executor, pool, db)
        finally:
            await executor.stop()
            await runtime.stop()
            db.close()
