"""Cancelling a running task stops it wherever its work goes next: the cancel's flag reaches the
workers the task used before it, and a job submits no new work after it (against a real Dask
cluster of two in-process workers)."""

from __future__ import annotations

import asyncio

from gswarm_jupyter.cluster.runtime.executor import Job

from .test_copy_engine import real_cluster


def _noop() -> int:
    return 1


async def test_work_a_cancelled_job_would_start_next_is_never_submitted(tmp_path):
    async with real_cluster(tmp_path) as (runtime, executor, _db):
        first_done = asyncio.Event()
        go_on = asyncio.Event()
        submitted: list[str] = []

        async def runner(job: Job) -> dict:
            await job.wait(job.submit(_noop, node="node1"))
            submitted.append("node1")
            first_done.set()
            await go_on.wait()  # the cancel comes here, between two steps on two nodes
            await job.wait(job.submit(_noop, node="node2"))
            submitted.append("node2")
            return {}

        executor.register("two_steps", runner)
        await executor.start()
        try:
            await _cancel_between_steps(executor, first_done, go_on, submitted)
        finally:
            await executor.stop()


async def _cancel_between_steps(executor, first_done, go_on, submitted) -> None:
    task = executor.submit("two_steps", "s")
    await asyncio.wait_for(first_done.wait(), 60)
    cancelling = asyncio.ensure_future(executor.cancel(task.task_id))
    await asyncio.sleep(0.2)
    go_on.set()
    cancelled = await asyncio.wait_for(cancelling, 60)
    assert cancelled.status == "cancelled"
    assert submitted == ["node1"]
    # its flag does not outlive it: a later task of the same id (a new server's) is not cancelled
    from gswarm_jupyter.cluster.runtime.signals import TaskSignal

    assert not TaskSignal(task.task_id).cancelled  # in-process workers share this process
