"""The task queue's ordering and state machine: pure, no I/O, no Dask.

A task is `pending` until its dependencies completed, a concurrency slot is free and none of its
lock keys is held by a running task (the limit is a number, or a function asked at each dispatch:
the server's default follows the cluster's worker threads, `limit_per_thread`); `dispatch` then starts the best ready tasks (priority, then
FIFO). Finished states (`completed`, `failed`, `cancelled`) are final. A failed or cancelled
dependency fails its dependants, transitively, with `DEPENDENCY_FAILED`.

Every change is announced to `listeners` (the durable store, the executor, WebSocket streams).
A task's `payload` (big inputs only its runner reads) is let go when the task finishes; `prune`
forgets finished tasks, never pending or running ones. A submitter may hand the payload's JSON
in too (`encoded_payload`, made off the event loop): the store writes that text as it is.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, get_args

from .errors import Conflict, DependencyFailed, GswarmError, InternalError, InvalidRequest, NotFound
from .listeners import Listeners

Priority = Literal["critical", "high", "normal", "low"]
Status = Literal["pending", "running", "completed", "failed", "cancelled"]

PRIORITIES: tuple[str, ...] = get_args(Priority)
STATUSES: tuple[str, ...] = get_args(Status)
FINISHED: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
RANK: dict[str, int] = {p: i for i, p in enumerate(PRIORITIES)}  # lower runs first
# Dask runs higher `priority=` first.
DASK_PRIORITY: dict[str, int] = {"critical": 30, "high": 20, "normal": 10, "low": 0}

_SUBJECT = re.compile(r"[^A-Za-z0-9._-]+")

# The server's default limit: tasks running at once per worker thread of the online nodes, and
# never fewer than `MIN_CONCURRENT`. A running task holds its slot across Dask's batched message
# hops (client 10 ms, scheduler 5 and 2 ms intervals) while its work on a thread may take
# microseconds: one task per thread leaves the threads idle, several keep them fed (Dask orders
# the work queued on a worker by the task's priority).
TASKS_PER_THREAD = 8
MIN_CONCURRENT = 4


def limit_per_thread(threads: Callable[[], int]) -> Callable[[], int]:
    """The default limit: `TASKS_PER_THREAD` for each of `threads()`, at least `MIN_CONCURRENT`."""
    return lambda: max(MIN_CONCURRENT, TASKS_PER_THREAD * threads())



def check_priority(priority: str, field: str = "priority") -> Priority:
    if priority not in RANK:
        raise InvalidRequest(
            f"unknown priority {priority!r}: expected one of {', '.join(PRIORITIES)}",
            {"field": field, "allowed": list(PRIORITIES)},
        )
    return priority  # type: ignore[return-value]


def task_id_for(task_type: str, subject: str, n: int) -> str:
    """`<type>-<subject>-<n>`, the subject reduced to id-safe characters."""
    clean = _SUBJECT.sub("_", subject).strip("_") or "task"
    return f"{task_type}-{clean}-{n}"


@dataclass(slots=True)
class Task:
    task_id: str
    task_type: str
    seq: int
    priority: Priority = "normal"
    status: Status = "pending"
    dependencies: list[str] = field(default_factory=list)
    resources: dict[str, list[str]] = field(default_factory=dict)
    created_at: float = 0.0
    started_at: float | None = None
    completed_at: float | None = None
    progress: int = 0
    result: Any = None
    error: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)  # what the runner needs; not in the record
    payload: dict[str, Any] = field(default_factory=dict)  # big runner inputs; gone once finished
    encoded_payload: str | None = field(default=None, repr=False)  # its JSON, when handed in
    locks: list[str] = field(default_factory=list)  # keys no two running tasks may share

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def order(self) -> tuple[int, int]:
        """Dispatch order: priority first, then submission order."""
        return (RANK[self.priority], self.seq)

    def record(self) -> dict[str, Any]:
        """The API's task record."""
        return {
            "task_id": self.task_id,
            "task_type": self.task_type,
            "priority": self.priority,
            "status": self.status,
            "dependencies": list(self.dependencies),
            "resources": {
                "devices": list(self.resources.get("devices", [])),
                "models": list(self.resources.get("models", [])),
                "chunks": list(self.resources.get("chunks", [])),
            },
            "created_at": self.created_at,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "progress": self.progress,
            "result": self.result,
            "error": self.error,
        }




class TaskOptions(TypedDict, total=False):
    """What a task may say besides its type and subject (`TaskQueue.submit`'s keywords)."""

    priority: str
    dependencies: Iterable[str]
    resources: dict[str, list[str]] | None
    params: dict[str, Any] | None
    payload: dict[str, Any] | None
    encoded_payload: str | None
    locks: Iterable[str]


class TaskQueue:
    """All tasks, in memory; the store persists them through a listener."""

    def __init__(
        self,
        max_concurrent: int | Callable[[], int] = 4,
        clock: Callable[[], float] = time.time,
        journal: Callable[[Task], None] | None = None,
    ) -> None:
        self.max_concurrent = max_concurrent  # type: ignore[assignment]
        self.clock = clock
        # Records a new task durably before `submit` answers; if it fails, the task never was.
        self._journal = journal
        self.listeners: Listeners[Task] = Listeners("task")
        self._tasks: dict[str, Task] = {}
        # Indexes kept by every status change, so dispatch never sorts or scans finished tasks:
        # pending tasks per priority rank (dicts keep submission order), and the running ones.
        self._pending: list[dict[str, Task]] = [{} for _ in PRIORITIES]
        self._running_now: dict[str, Task] = {}
        self._finished: dict[str, Task] = {}  # in the order they finished
        self._seq = 0

    @property
    def max_concurrent(self) -> int:
        """Tasks that may run at once, now (a function's answer is asked each time)."""
        limit = self._limit
        return limit if isinstance(limit, int) else max(1, limit())

    @max_concurrent.setter
    def max_concurrent(self, limit: int | Callable[[], int]) -> None:
        if isinstance(limit, int) and limit < 1:
            raise ValueError("max_concurrent must be at least 1")
        self._limit = limit

    @property
    def journaled(self) -> bool:
        """Whether new tasks are recorded durably before `submit` answers."""
        return self._journal is not None

    # -- reading ------------------------------------------------------------------------------

    def get(self, task_id: str) -> Task:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise NotFound(f"unknown task {task_id!r}", {"task_id": task_id}) from None

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def tasks(self, status: str | None = None, task_type: str | None = None) -> list[Task]:
        """Tasks in submission order, optionally filtered."""
        return [
            t
            for t in sorted(self._tasks.values(), key=lambda t: t.seq)
            if (status is None or t.status == status)
            and (task_type is None or t.task_type == task_type)
        ]

    def running(self) -> list[Task]:
        return list(self._running_now.values())

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for task in self._tasks.values():
            counts[task.status] += 1
        return counts

    def position(self, task_id: str) -> int | None:
        """0-based place of a pending task in dispatch order (None once it left `pending`).

        Read off the pending index: the better priorities' sizes, plus the task's place in its
        own (submission-ordered) bucket, which for the newest task is its end: O(1) there."""
        task = self.get(task_id)
        if task.status != "pending":
            return None
        rank = RANK[task.priority]
        ahead = sum(len(bucket) for bucket in self._pending[:rank])
        bucket = self._pending[rank]
        if next(reversed(bucket)) == task_id:
            return ahead + len(bucket) - 1
        return ahead + sum(1 for t in bucket.values() if t.seq < task.seq)

    # -- changing -----------------------------------------------------------------------------

    def submit(
        self,
        task_type: str,
        subject: str,
        *,
        priority: str = "normal",
        dependencies: Iterable[str] = (),
        resources: dict[str, list[str]] | None = None,
        params: dict[str, Any] | None = None,
        payload: dict[str, Any] | None = None,
        encoded_payload: str | None = None,
        locks: Iterable[str] = (),
    ) -> Task:
        """Add a pending task. Unknown priority or dependency ids are `InvalidRequest`.

        A dependency that already failed or was cancelled fails the new task at once.
        """
        prio = check_priority(priority)
        deps = list(dict.fromkeys(dependencies))
        unknown = [d for d in deps if d not in self._tasks]
        if unknown:
            raise InvalidRequest(
                f"unknown dependency task(s): {', '.join(map(repr, unknown))}",
                {"field": "dependencies", "unknown": unknown},
            )
        self._seq += 1
        task = Task(
            task_id=task_id_for(task_type, subject, self._seq),
            task_type=task_type,
            seq=self._seq,
            priority=prio,
            dependencies=deps,
            resources={k: list(v) for k, v in (resources or {}).items()},
            created_at=self.clock(),
            params=dict(params or {}),
            payload=dict(payload or {}),
            encoded_payload=encoded_payload if payload else None,
            locks=list(locks),
        )
        if self._journal is not None:
            try:
                self._journal(task)
            except Exception as exc:  # not recorded: refused, so no caller holds an unkept id
                self._seq -= 1
                raise InternalError(f"the task could not be recorded: {exc}") from exc
        self._tasks[task.task_id] = task
        self._index(task)
        self._emit(task)
        broken = self._broken_dependency(task)
        if broken is not None:
            self._fail_for_dependency(task, broken)
        return task

    def dispatch(self) -> list[Task]:
        """Start every task that may run now, best first; answer the tasks started."""
        running = self.running()
        free = self.max_concurrent - len(running)
        if free <= 0:
            return []
        held = {key for t in running for key in t.locks}
        chosen: list[Task] = []
        for bucket in self._pending:  # best priority first, FIFO within one
            for task in bucket.values():
                if len(chosen) == free:
                    break
                if not self._dependencies_met(task) or held.intersection(task.locks):
                    continue
                held.update(task.locks)
                chosen.append(task)
        started: list[Task] = []
        for task in chosen:
            self._unindex(task)
            task.status = "running"
            self._index(task)
            task.started_at = self.clock()
            task.progress = 0
            started.append(task)
            self._emit(task)
        return started

    def set_progress(self, task_id: str, progress: float) -> Task | None:
        """Record progress (0..100, clamped, integer) of a running task; None if it is not running
        or nothing changed."""
        task = self._tasks.get(task_id)
        if task is None or task.status != "running":
            return None
        value = max(0, min(100, int(progress)))
        if value == task.progress:
            return None
        task.progress = value
        self._emit(task)
        return task

    def complete(self, task_id: str, result: Any = None) -> Task:
        task = self._running(task_id, "complete")
        task.progress = 100
        task.result = result
        self._finish(task, "completed")
        return task

    def fail(self, task_id: str, error: GswarmError | dict[str, Any]) -> Task:
        """Fail a pending or running task; its dependants fail with `DEPENDENCY_FAILED`."""
        task = self.get(task_id)
        if task.finished:
            raise Conflict(
                f"task {task_id} is already {task.status}",
                {"task_id": task_id, "status": task.status},
            )
        task.error = error.to_dict() if isinstance(error, GswarmError) else dict(error)
        self._finish(task, "failed")
        return task

    def cancel(self, task_id: str) -> Task:
        """Cancel a pending or running task (the executor stops running work first);
        a finished task is `Conflict`."""
        task = self.get(task_id)
        if task.finished:
            raise Conflict(
                f"task {task_id} is already {task.status}: only pending or running tasks can "
                "be cancelled",
                {"task_id": task_id, "status": task.status},
            )
        self._finish(task, "cancelled")
        return task

    def restore(self, tasks: Iterable[Task], reason: str = "interrupted") -> list[Task]:
        """Load tasks from the durable store after a restart: `running` ones become `failed` with
        an `interrupted` reason, pending ones stay pending. Answers the tasks changed."""
        changed: list[Task] = []
        for task in sorted(tasks, key=lambda t: (t.completed_at or 0.0, t.seq)):  # finish order
            self._tasks[task.task_id] = task
            self._index(task)
            self._seq = max(self._seq, task.seq)
        for task in list(self._tasks.values()):
            if task.status == "running":
                task.error = {
                    "code": "TASK_FAILED",
                    "message": "interrupted: the server stopped while the task was running",
                    "details": {"reason": reason},
                }
                self._finish(task, "failed")
                changed.append(task)
        for task in list(self._tasks.values()):
            if task.status == "pending":
                broken = self._broken_dependency(task)
                if broken is not None:
                    self._fail_for_dependency(task, broken)
                    changed.append(task)
        return changed

    def prune(self, before: float, keep: int) -> list[str]:
        """Forget finished tasks that finished before `before`, and all but the `keep` latest
        finished; answers the ids forgotten. Pending and running tasks always stay."""
        old = [t.task_id for t in self._finished.values() if (t.completed_at or 0.0) < before]
        over = list(self._finished)[: max(0, len(self._finished) - keep)]
        dropped = list(dict.fromkeys([*over, *old]))
        for task_id in dropped:
            del self._finished[task_id]
            del self._tasks[task_id]
        return dropped

    # -- inside -------------------------------------------------------------------------------

    def _running(self, task_id: str, action: str) -> Task:
        task = self.get(task_id)
        if task.status != "running":
            raise Conflict(
                f"cannot {action} task {task_id}: it is {task.status}",
                {"task_id": task_id, "status": task.status},
            )
        return task

    def _index(self, task: Task) -> None:
        if task.status == "pending":
            self._pending[RANK[task.priority]][task.task_id] = task
        elif task.status == "running":
            self._running_now[task.task_id] = task
        else:
            self._finished[task.task_id] = task

    def _unindex(self, task: Task) -> None:
        self._pending[RANK[task.priority]].pop(task.task_id, None)
        self._running_now.pop(task.task_id, None)

    def _finish(self, task: Task, status: Status) -> None:
        self._unindex(task)
        task.status = status
        task.completed_at = self.clock()
        task.payload = {}  # a new dict: a runner still holding the old one keeps it
        task.encoded_payload = None
        self._index(task)
        self._emit(task)
        if status != "completed":
            for dependant in self._dependants(task.task_id):
                if not dependant.finished:
                    self._fail_for_dependency(dependant, task)

    def _fail_for_dependency(self, task: Task, dependency: Task) -> None:
        task.error = DependencyFailed(
            f"dependency {dependency.task_id} {dependency.status}",
            {"dependency": dependency.task_id, "dependency_status": dependency.status},
        ).to_dict()
        self._finish(task, "failed")

    def _dependants(self, task_id: str) -> list[Task]:
        return sorted(
            (t for t in self._tasks.values() if task_id in t.dependencies), key=lambda t: t.seq
        )

    def _dependencies_met(self, task: Task) -> bool:
        deps = (self._tasks[d] for d in task.dependencies if d in self._tasks)
        return all(d.status == "completed" for d in deps)

    def _broken_dependency(self, task: Task) -> Task | None:
        for dep_id in task.dependencies:
            dep = self._tasks.get(dep_id)
            if dep is not None and dep.status in ("failed", "cancelled"):
                return dep
        return None

    def _emit(self, task: Task) -> None:
        self.listeners.emit(task)  # one broken listener stalls neither dependants nor the others
