"""`runtime.watch`, the one wait on a call that may lose its worker, over real Dask futures: the
result, a worker op's API error, a worker seen gone, and a timeout; and a data-pool read
(`ClusterRuntime.run_on`, the watched call to a node) whose worker dies while the read waits for it.
(A replica call failing because its worker went away is tested through the gateway,
tests/cluster/test_gateway.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from distributed import Worker

from gswarm_jupyter.cluster.runtime.cluster import ClusterConfig, ClusterRuntime
from gswarm_jupyter.cluster.runtime.executor import TaskExecutor
from gswarm_jupyter.cluster.runtime.signals import TaskSignal, worker_op
from gswarm_jupyter.cluster.runtime.watch import WatchTimeout, WorkerLost, watch
from gswarm_jupyter.cluster.storage.chunkstore import put_chunk
from gswarm_jupyter.cluster.storage.datapool import DataPool
from gswarm_jupyter.core.chunks import ChunkRegistry
from gswarm_jupyter.core.db import Database
from gswarm_jupyter.core.errors import ModelNotFound, NetworkError
from gswarm_jupyter.core.tasks import TaskQueue


def add(a: int, b: int) -> int:
    return a + b


@worker_op
def missing_model() -> None:
    raise ModelNotFound("model 'm' is not loaded", {"model_id": "m"})


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@contextlib.asynccontextmanager
async def one_node(tmp_path) -> AsyncIterator[ClusterRuntime]:
    runtime = ClusterRuntime(ClusterConfig(local_nodes=1, local_processes=False,
                                           data_dir=tmp_path, worker_memory_limit="8GiB"))
    await runtime.start()
    try:
        await runtime.wait_ready(120)
        yield runtime
    finally:
        await runtime.stop()


def here() -> None:
    return None


async def test_watch_answers_results_and_worker_op_errors_as_api_errors(tmp_path):
    async with one_node(tmp_path) as runtime:
        client = runtime.require_client()
        assert await watch(client.submit(add, 2, 3, pure=False), here) == 5
        with pytest.raises(ModelNotFound) as caught:
            await watch(client.submit(missing_model, pure=False), here)
        assert caught.value.details == {"model_id": "m"}


async def test_a_worker_seen_gone_ends_the_wait_at_once(tmp_path):
    async with one_node(tmp_path) as runtime:
        future = runtime.require_client().submit(nap, 5.0, pure=False)
        asked: list[int] = []

        def gone() -> str | None:
            asked.append(1)
            return "node1" if len(asked) >= 2 else None  # there at the first look, then gone

        with pytest.raises(WorkerLost) as caught:
            await watch(future, gone)
        assert str(caught.value) == "node1" and caught.value.found
        assert len(asked) == 2 and not future.done()  # it did not wait for the call


async def test_a_call_past_its_timeout_is_given_up(tmp_path):
    async with one_node(tmp_path) as runtime:
        future = runtime.require_client().submit(nap, 5.0, pure=False)
        with pytest.raises(WatchTimeout):
            await watch(future, here, timeout=0.5)
        assert not future.done()


async def test_a_chunk_read_whose_worker_dies_answers_network_error_not_a_hang(tmp_path):
    async with one_node(tmp_path) as runtime:
        db = Database(tmp_path / "gswarm.sqlite3")
        db.migrate()
        registry = ChunkRegistry(db)
        pool = DataPool(registry, runtime, TaskExecutor(TaskQueue(1), runtime, None))
        registry.create("c", chunk_type="input", fmt="bytes", size=64, shape=None, dtype=None,
                        created_by=None)
        stored = await runtime.run_on("node1", put_chunk, "c", "dram", bytes(64),
                                      TaskSignal("put-c"), timeout=30)
        registry.copies.put("c", "node1", "dram", "available", worker=stored["worker"])
        address = runtime.nodes.online_node("node1").address
        # Every thread of node1 busy: the read waits on the worker, pinned to it.
        busy = [runtime.require_client().submit(nap, 5.0, workers=[address], pure=False)
                for _ in range(runtime.config.threads_per_node)]
        reading = asyncio.ensure_future(pool.content("c"))
        await asyncio.sleep(0.5)
        assert not reading.done()

        [worker] = [w for w in Worker._instances if w.address == address]
        await worker.close(timeout=10, executor_wait=False)  # as a killed worker would go

        with pytest.raises(NetworkError) as caught:
            await asyncio.wait_for(reading, 60)  # without the watch, it waits for ever
        assert caught.value.code == "NETWORK_ERROR" and caught.value.details == {"node": "node1"}
        assert "get_chunk" in caught.value.message
        del busy
        db.close()
