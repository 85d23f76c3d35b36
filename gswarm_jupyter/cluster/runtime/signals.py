"""Worker side of a queued task: progress out, cancellation in.

A worker op receives a `TaskSignal`. `signal.progress(p)` logs a Dask worker event on
`PROGRESS_TOPIC`, which the scheduler forwards to the server's client (`subscribe_topic`).
`signal.check()` raises `TaskCancelled` once the server has flagged the task on this worker with
`flag_cancelled` (pushed by `Client.run`, so checking costs no round trip).

Errors cross back to the server as `WorkerOpError(code, message, details)`, which pickles whatever
the original exception's constructor looks like.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ...core.errors import GswarmError, error_from_dict

PROGRESS_TOPIC = "gswarm-task-progress"

_lock = threading.Lock()
_cancelled: set[str] = set()
_last_progress: dict[str, int] = {}

F = TypeVar("F", bound=Callable[..., Any])


class TaskCancelled(Exception):
    """The server cancelled the task while this worker op ran."""


class WorkerOpError(Exception):
    """A `GswarmError` raised in a worker op, in a form that survives pickling."""

    def __init__(self, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(code, message, details)
        self.code, self.message, self.details = code, message, details

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def api_error(exc: WorkerOpError) -> GswarmError:
    """The API error a worker op raised, rebuilt on the server (the one place this is done)."""
    return error_from_dict({"code": exc.code, "message": exc.message, "details": exc.details})


@dataclass(frozen=True, slots=True)
class TaskSignal:
    task_id: str

    @property
    def cancelled(self) -> bool:
        return self.task_id in _cancelled

    def check(self) -> None:
        """Raise `TaskCancelled` if the server cancelled this task."""
        if self.task_id in _cancelled:
            raise TaskCancelled(self.task_id)

    def progress(self, percent: float) -> None:
        """Report progress 0..100; only whole-percent changes travel."""
        value = max(0, min(100, int(percent)))
        with _lock:
            if _last_progress.get(self.task_id) == value:
                return
            _last_progress[self.task_id] = value
        from distributed import get_worker

        try:
            worker = get_worker()
        except ValueError:  # not on a worker (direct call in a test): nobody to tell
            return
        worker.log_event(PROGRESS_TOPIC, {"task_id": self.task_id, "progress": value})

    def done(self) -> None:
        """Forget this task's worker-side state."""
        with _lock:
            _last_progress.pop(self.task_id, None)
            _cancelled.discard(self.task_id)


def flag_cancelled(task_id: str) -> bool:
    """Run on workers by `Client.run`: mark `task_id` cancelled for its ops here."""
    with _lock:
        _cancelled.add(task_id)
    return True


def forget_task(task_id: str) -> bool:
    """Run on workers by `Client.run` once a cancelled task's ops all ended: its flag goes."""
    TaskSignal(task_id).done()
    return True


def worker_op(fn: F) -> F:
    """Make a worker op's `GswarmError`s cross to the server intact."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GswarmError as exc:
            error = WorkerOpError(exc.code, exc.message, exc.details)
        raise error  # outside `except`: no chained context (an open socket) to pickle

    return wrapper  # type: ignore[return-value]
