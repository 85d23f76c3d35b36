"""Runs the task queue's tasks on Dask.

Each task type has a runner, `async def runner(job: Job) -> result`, registered by the feature
that owns it. A runner puts its work on nodes with `job.submit(fn, ..., node=...)` (pinned to that
worker, Dask `priority=` from the task's priority, never cached), awaits it with `job.wait(future)`
(values reported together are gathered together, `results.py`), and passes `job.signal` to
worker ops that report progress and honour cancellation (see `signals.py`). Whatever the runner returns is the task's `result`; a `GswarmError` it raises
is the task's `error`. Cleaning up after a failed or cancelled task is the runner's job
(`try/except` around its work); the executor cancels the task's remaining Dask futures.

A node lost while a job waits on it (offline, or its worker restarted under a new address) fails
the job with `NETWORK_ERROR` rather than leaving it waiting on a worker that no longer exists
(`watch.watch`, the same wait the serving replicas use).

Finished tasks are dropped by the retention policy at start and every `retention.interval` s.
A new task's row is committed before `submit` answers (so before any 202); its later changes are
written in groups off the event loop (`TaskStore.save_later`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Unpack

from distributed import Client, Future

from ...core.aio import cancel_and_wait
from ...core.errors import (
    Conflict,
    GswarmError,
    NetworkError,
    ResourceUnavailable,
    TaskFailed,
)
from ...core.retention import Retention, apply_retention
from ...core.tasks import DASK_PRIORITY, Task, TaskOptions, TaskQueue
from ...core.taskstore import TaskStore
from .cluster import ClusterRuntime
from .results import Results
from .signals import (
    PROGRESS_TOPIC,
    TaskCancelled,
    TaskSignal,
    flag_cancelled,
    forget_task,
)
from .watch import WorkerLost, moved, watch

log = logging.getLogger(__name__)

Runner = Callable[["Job"], Awaitable[Any]]

CANCEL_GRACE = 10.0  # how long a cancelled job may take to stop by itself before it is torn down


class Cancelled(Exception):
    """Raised inside a runner when its task was cancelled."""


class Job:
    """One running task, as its runner sees it."""

    def __init__(self, executor: TaskExecutor, task: Task) -> None:
        self.executor = executor
        self.task = task
        self.signal = TaskSignal(task.task_id)
        self.futures: list[Future] = []
        self.pinned: dict[str, str] = {}  # node -> worker address its work went to
        self.cancel_requested = False
        self._keys = itertools.count()

    @property
    def params(self) -> dict[str, Any]:
        return self.task.params

    @property
    def payload(self) -> dict[str, Any]:
        """The task's big inputs (stored once, apart from its row)."""
        return self.task.payload

    @property
    def client(self) -> Client:
        return self.executor.runtime.require_client()

    def address(self, node: str) -> str:
        """The worker address of an online node."""
        return self.executor.runtime.nodes.online_node(node).address

    def submit(self, fn: Callable[..., Any], *args: Any, node: str, cancellable: bool = True,
               **kwargs: Any) -> Future:
        """Run `fn(*args, **kwargs)` on `node`'s worker (Dask futures among args are carried
        there worker to worker). Once the task is cancelled, `Cancelled` instead: the cancel's
        flag went only to the workers pinned before it (`cancellable=False` for work that must
        still run, such as refreshing copies of a version already written)."""
        if cancellable:
            self.check()
        address = self.address(node)
        self.pinned.setdefault(node, address)
        future = self.client.submit(
            fn,
            *args,
            workers=[address],
            allow_other_workers=False,
            priority=DASK_PRIORITY[self.task.priority],
            pure=False,
            key=f"gswarm-{fn.__name__}-{self.task.task_id}-{next(self._keys)}",
            **kwargs,
        )
        self.futures.append(future)
        return future

    async def wait(self, future: Future) -> Any:
        """The future's result; `Cancelled`, or the task error its failure means."""
        try:
            return await watch(self.executor.results.get(future), self._lost_node)
        except WorkerLost as exc:
            if exc.found:  # `_lost_node` named the node
                raise NetworkError(f"node {exc} was lost while task {self.task.task_id} ran on it",
                                   {"node": str(exc)}) from None
            if self.cancel_requested:  # its futures were cancelled with it
                raise Cancelled(self.task.task_id) from None
            raise NetworkError(str(exc)) from None
        except TaskCancelled:
            raise Cancelled(self.task.task_id) from None
        except GswarmError:
            raise
        except Exception as exc:
            if self.cancel_requested:
                raise Cancelled(self.task.task_id) from None
            raise TaskFailed(f"{type(exc).__name__}: {exc}") from None

    def progress(self, percent: float) -> None:
        """Progress measured on the server side (worker ops use `signal.progress`)."""
        self.executor.queue.set_progress(self.task.task_id, percent)

    def check(self) -> None:
        """Raise `Cancelled` if the task was cancelled (for runners between steps)."""
        if self.cancel_requested:
            raise Cancelled(self.task.task_id)

    def _lost_node(self) -> str | None:
        """The first node this job's work went to that is gone (offline or moved), if any."""
        nodes = self.executor.runtime.nodes
        return next((node for node, address in self.pinned.items()
                     if moved(nodes, node, address)), None)


class TaskExecutor:
    """Dispatches the queue's tasks to their runners; persists every change to the store."""

    def __init__(
        self,
        queue: TaskQueue,
        runtime: ClusterRuntime,
        store: TaskStore | None,
        retention: Retention | None = None,
    ) -> None:
        self.queue = queue
        self.runtime = runtime
        self.store = store
        self.retention = retention or Retention()
        self.runners: dict[str, Runner] = {}
        self.results = Results()  # the values jobs wait for, gathered together
        self.jobs: dict[str, tuple[Job, asyncio.Task[None]]] = {}
        self.cancel_grace = CANCEL_GRACE
        self._waiters: dict[str, list[asyncio.Future[Task]]] = {}
        self._ready = False
        self._stopping = False
        self._subscribed: Client | None = None
        self._starter: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        if store is not None and not queue.journaled:
            raise ValueError("a queue with a store must journal new tasks into it (record_new)")
        queue.listeners.add(self._on_change)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Restore tasks from the store (running ones fail as interrupted), drop the finished
        ones retention no longer keeps, then dispatch once the cluster is ready."""
        if self.store is not None:
            self.queue.restore(self.store.load())
        await apply_retention(self.retention, self.queue, self.store)
        self._starter = asyncio.create_task(self._start_when_ready(), name="gswarm-executor")
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="gswarm-task-retention")

    async def _start_when_ready(self) -> None:
        await self.runtime.wait_ready()
        self._ready = True
        self.dispatch()

    async def stop(self) -> None:
        """Stop dispatching and tear down running jobs; their tasks stay `running` in the store
        and are failed as interrupted on the next start."""
        self._stopping = True
        await cancel_and_wait(self._starter)
        await cancel_and_wait(self._sweeper)
        for _, task in list(self.jobs.values()):
            await cancel_and_wait(task)
        if self._subscribed is not None:
            with contextlib.suppress(Exception):
                self._subscribed.unsubscribe_topic(PROGRESS_TOPIC)
        if self.store is not None:  # every change noted so far reaches the disk
            await asyncio.to_thread(self.store.close)
        stopping = ResourceUnavailable("the server is stopping; the task resumes or fails on restart")
        for waiters in self._waiters.values():  # nobody waits forever on a stopped executor
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(stopping)
        self._waiters.clear()

    # -- the queue API ------------------------------------------------------------------------

    def register(self, task_type: str, runner: Runner) -> None:
        """Make `task_type` runnable; register before the server starts."""
        self.runners[task_type] = runner

    def submit(self, task_type: str, subject: str, **options: Unpack[TaskOptions]) -> Task:
        """Queue a task (`InvalidRequest` for an unknown priority or dependency) and start it
        if it may run now. `payload` holds big inputs only the runner reads."""
        if task_type not in self.runners:
            raise ValueError(f"no runner registered for task type {task_type!r}")
        task = self.queue.submit(task_type, subject, **options)
        self.dispatch()
        return task

    async def cancel(self, task_id: str) -> Task:
        """Cancel a pending task at once; stop a running one (its worker ops see the flag between
        blocks) and answer once it stopped. A finished task is `Conflict`."""
        task = self.queue.get(task_id)
        entry = self.jobs.get(task_id)
        if task.status != "running" or entry is None:
            self.queue.cancel(task_id)
            self.dispatch()
            return task
        job, running = entry
        job.cancel_requested = True
        addresses = sorted(set(job.pinned.values()))
        if addresses and self.runtime.client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self.runtime.client.run(
                        flag_cancelled, task_id, workers=addresses, on_error="ignore"
                    ),
                    timeout=self.cancel_grace,
                )
        done, _ = await asyncio.wait({running}, timeout=self.cancel_grace)
        if not done:
            running.cancel()
            with contextlib.suppress(BaseException):
                await running
        if not task.finished:
            self.queue.cancel(task_id)
            self.dispatch()
        if task.status != "cancelled":
            raise Conflict(
                f"task {task_id} {task.status} before it could be cancelled",
                {"task_id": task_id, "status": task.status},
            )
        return task

    async def history(
        self, limit: int = 100, since: float | None = None, status: str | None = None
    ) -> list[Task]:
        """Finished tasks, the most recently finished first, every change so far included."""
        if self.store is None:
            return []
        await asyncio.to_thread(self.store.flush)
        return self.store.history(limit=limit, since=since, status=status)

    async def wait(self, task_id: str, timeout: float | None = None) -> Task:
        """The task once it finished."""
        task = self.queue.get(task_id)
        if task.finished:
            return task
        waiter: asyncio.Future[Task] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(task_id, []).append(waiter)
        return await asyncio.wait_for(waiter, timeout)

    # -- inside -------------------------------------------------------------------------------

    def dispatch(self) -> None:
        if not self._ready or self._stopping or self.runtime.client is None:
            return
        self._subscribe()
        for task in self.queue.dispatch():
            runner = self.runners.get(task.task_type)
            if runner is None:
                self.queue.fail(
                    task.task_id, TaskFailed(f"no runner for task type {task.task_type!r}")
                )
                continue
            job = Job(self, task)
            running = asyncio.create_task(self._run(job, runner), name=f"gswarm-{task.task_id}")
            self.jobs[task.task_id] = (job, running)

    async def _run(self, job: Job, runner: Runner) -> None:
        task_id = job.task.task_id
        try:
            result = await runner(job)
        except asyncio.CancelledError:
            if not self._stopping and not job.task.finished:
                self.queue.cancel(task_id)
            if self._stopping:
                raise
        except Cancelled:
            if not job.task.finished:
                self.queue.cancel(task_id)
        except GswarmError as exc:
            if not job.task.finished:
                self.queue.fail(task_id, exc)
        except Exception as exc:
            log.exception("gswarm: task %s failed", task_id)
            if not job.task.finished:
                self.queue.fail(task_id, TaskFailed(f"{type(exc).__name__}: {exc}"))
        else:
            if not job.task.finished:
                self.queue.complete(task_id, result)
        finally:
            self.jobs.pop(task_id, None)
            await self._release(job)
        self.dispatch()

    async def _release(self, job: Job) -> None:
        pending = [f for f in job.futures if not f.done()]
        client = self.runtime.client
        if pending and client is not None:
            with contextlib.suppress(Exception):
                await client.cancel(pending)
        elif job.cancel_requested and job.pinned and client is not None:
            # no op of the job runs any more: its cancel flags would linger on the workers (and
            # cancel a later task of the same id: a new server's counters restart)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    client.run(forget_task, job.task.task_id,
                               workers=sorted(set(job.pinned.values())), on_error="ignore"),
                    timeout=self.cancel_grace,
                )
        job.futures.clear()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.retention.interval)
            try:
                await apply_retention(self.retention, self.queue, self.store)
            except Exception:  # a failed sweep is retried at the next one
                log.exception("gswarm: dropping old finished tasks failed")

    def _subscribe(self) -> None:
        client = self.runtime.client
        if client is not None and client is not self._subscribed:
            client.subscribe_topic(PROGRESS_TOPIC, self._on_progress)
            self._subscribed = client

    def _on_progress(self, event: tuple[float, dict[str, Any]]) -> None:
        _, msg = event
        self.queue.set_progress(str(msg.get("task_id")), float(msg.get("progress", 0)))

    def _on_change(self, task: Task) -> None:
        # A new task's row was committed by the queue's journal; later changes are grouped.
        if self.store is not None and task.status != "pending":
            self.store.save_later(task)
        if task.finished:
            for waiter in self._waiters.pop(task.task_id, []):
                if not waiter.done():
                    waiter.set_result(task)
