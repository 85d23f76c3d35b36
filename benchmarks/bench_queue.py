"""2,000 and 10,000 no-op tasks through the task queue (a registered runner that submits a trivial
function to a node and awaits it, every state change persisted as in the server) against as many
plain `client.submit` calls of the same function on the same cluster, in interleaved rounds."""

from __future__ import annotations

import asyncio
import statistics
import time

from .cluster import Swarm, swarm
from .harness import Result

SIZES = {2000: 3, 10_000: 1}  # tasks per round: rounds


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


async def _measure() -> tuple[dict[int, tuple[float, float]], int]:
    async with swarm() as s:
        async def runner(job):  # type: ignore[no-untyped-def]
            return await job.wait(job.submit(noop, job.params["i"], node=job.params["node"]))

        s.executor.register("noop", runner)
        await _through_queue(s, 100), await _plain_dask(s, 100)  # warm-up
        rates: dict[int, tuple[float, float]] = {}
        for n, rounds in SIZES.items():
            queue, dask = [], []
            for _ in range(rounds):
                queue.append(await _through_queue(s, n))
                dask.append(await _plain_dask(s, n))
            rates[n] = statistics.median(queue), statistics.median(dask)
        return rates, s.executor.queue.max_concurrent


def run() -> list[Result]:
    rates, concurrency = asyncio.run(_measure())
    results = []
    for n, rounds in SIZES.items():
        queue_rate, dask_rate = rates[n]
        results.append(Result(
            name="queue_noop_tasks_per_second" if n == 2000 else f"queue_noop_tasks_per_second_{n}",
            value=queue_rate,
            unit="tasks/s",
            baseline="plain client.submit + gather, same cluster",
            baseline_value=dask_rate,
            ratio=queue_rate / dask_rate,
            goal=">= 0.5",
            note=(f"median of {rounds} interleaved round(s) of {n:,} tasks over 2 worker processes; "
                  f"the queue runs at most {concurrency} tasks at once (the server's default, "
                  "documented as the tasks that run at once) and persists every task: a new "
                  "task's row is committed before submit answers, later changes are grouped into "
                  "one transaction per few ms on a writer thread; an interleaved A/B in one "
                  "cluster measured that equal to a commit per change, so SQLite is not the limit. "
                  "Profiled (cProfile of the event loop): the cost is ~7 Dask messages per task "
                  "over TLS (SSL writes lead the profile), which plain submit amortises by having "
                  f"every task in flight; the queue has {concurrency} round trips in flight, so "
                  "the goal needs more tasks running at once than the documented limit allows "
                  "(the owner's call: raise the default, or let Dask order tasks past it)"),
        ))
    return results
