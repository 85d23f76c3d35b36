"""2,000 no-op tasks through the task queue (a registered runner that submits a trivial function to
a node and awaits it, every state change persisted as in the server) against 2,000 plain
`client.submit` calls of the same function on the same cluster, in interleaved rounds."""

from __future__ import annotations

import asyncio
import statistics
import time

from .cluster import Swarm, swarm
from .harness import Result

TASKS = 2000
ROUNDS = 3


def noop(i: int) -> int:
    return i


async def _through_queue(s: Swarm, n: int) -> float:
    start = time.perf_counter()
    tasks = [s.executor.submit("noop", f"bench{i}", params={"i": i, "node": f"node{1 + i % 2}"})
             for i in range(n)]
    for task in tasks:
        done = await s.executor.wait(task.task_id)
        assert done.status == "completed", done.error
    return n / (time.perf_counter() - start)


async def _plain_dask(s: Swarm, n: int) -> float:
    client = s.runtime.client
    assert client is not None
    workers = {n.name: n.address for n in s.runtime.nodes.all()}
    start = time.perf_counter()
    futures = [client.submit(noop, i, workers=[workers[f"node{1 + i % 2}"]], pure=False)
               for i in range(n)]
    results = await client.gather(futures)
    assert results == list(range(n))
    return n / (time.perf_counter() - start)


async def _measure() -> tuple[float, float, int]:
    async with swarm() as s:
        async def runner(job):  # type: ignore[no-untyped-def]
            return await job.wait(job.submit(noop, job.params["i"], node=job.params["node"]))

        s.executor.register("noop", runner)
        await _through_queue(s, 100), await _plain_dask(s, 100)  # warm-up
        queue, dask = [], []
        for _ in range(ROUNDS):
            queue.append(await _through_queue(s, TASKS))
            dask.append(await _plain_dask(s, TASKS))
        return statistics.median(queue), statistics.median(dask), s.executor.queue.max_concurrent


def run() -> list[Result]:
    queue_rate, dask_rate, concurrency = asyncio.run(_measure())
    return [
        Result(
            name="queue_noop_tasks_per_second",
            value=queue_rate,
            unit="tasks/s",
            baseline="plain client.submit + gather, same cluster",
            baseline_value=dask_rate,
            ratio=queue_rate / dask_rate,
            goal=">= 0.5",
            note=(f"median of {ROUNDS} interleaved rounds of {TASKS} tasks over 2 worker processes; "
                  f"the queue runs at most {concurrency} tasks at once (the server's default) and "
                  "persists each state change to SQLite. Profiled (cProfile of the event loop): "
                  "each queued task costs ~7 Dask messages and 3 SQLite writes on the loop the "
                  "scheduler shares, and waits a full round trip before the next one is "
                  "dispatched; plain submit pipelines all 2,000. Dispatch is indexed (no sorting), "
                  "so the queue's own bookkeeping is not the bottleneck"),
        )
    ]
