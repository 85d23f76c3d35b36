"""`runtime.watch`, the one wait on a call that may lose its worker, over real Dask futures: the
result, a worker op's API error, a worker seen gone, and a timeout. (A call failing because its
worker went away is tested through the gateway, tests/cluster/test_gateway.py.)"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from gswarm_jupyter.cluster.runtime.cluster import ClusterConfig, ClusterRuntime
from gswarm_jupyter.cluster.runtime.signals import worker_op
from gswarm_jupyter.cluster.runtime.watch import WatchTimeout, WorkerLost, watch
from gswarm_jupyter.core.errors import ModelNotFound


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
