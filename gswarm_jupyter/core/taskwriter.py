"""Task state changes written in groups, on a thread of their own, off the event loop.

`put(task)` only notes the task's latest state (a later change of the same task replaces the one
not written yet); the writer thread commits every noted change in one transaction at most every
`interval` seconds, over its own SQLite connection. Changes reach the disk in the order they were
noted, and a change noted before `flush()` is committed when `flush()` answers. A new task's row is
never written here: the store inserts it, committed, before anyone is told the task exists; this
writer only updates rows (a row already pruned is simply not updated). What a crash loses is at
most the last `interval` of status and progress changes, never a task. The thread, its interval,
`flush` and `close` are `core.groupwriter`'s, shared with the audit log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .db import Database, dumps
from .groupwriter import INTERVAL, GroupWriter
from .tasks import Task

__all__ = ["INTERVAL", "TaskWriter"]

_State = tuple[str, float | None, float | None, int, Any, Any, bool]


class TaskWriter:
    """Groups task updates into one transaction per `interval`, written on a daemon thread
    (a `GroupWriter` keeping each task's latest state)."""

    def __init__(self, path: Path | str, interval: float = INTERVAL) -> None:
        self._writer: GroupWriter[dict[str, _State], tuple[str, _State]] = GroupWriter(
            path, batch=dict, add=_keep_latest, merge=lambda old, new: {**old, **new},
            write=_write, name="gswarm-task-writer",
            what="task changes", interval=interval,
        )
        self.path = self._writer.path
        self.interval = interval

    def put(self, task: Task) -> None:
        """Note `task`'s state (status, times, progress, result, error) to be written soon."""
        self._writer.note((task.task_id, (task.status, task.started_at, task.completed_at,
                                          task.progress, task.result, task.error, task.finished)))

    def flush(self, timeout: float | None = 30.0) -> None:
        """Answer once every change noted so far is committed (re-raises a write's failure)."""
        self._writer.flush(timeout)

    def close(self) -> None:
        """Write what is noted, then stop the thread (a closed writer takes no more changes)."""
        self._writer.close()


def _keep_latest(noted: dict[str, _State], item: tuple[str, _State]) -> None:
    """A later change of a task replaces the one not written yet."""
    noted[item[0]] = item[1]


def _write(db: Database, batch: dict[str, _State]) -> None:
    with db.transaction():
        db.conn.executemany(
            "UPDATE tasks SET status = ?, started_at = ?, completed_at = ?, progress = ?, "
            "result = ?, error = ? WHERE task_id = ?",
            [(status, started, completed, progress, dumps(result), dumps(error), task_id)
             for task_id, (status, started, completed, progress, result, error, _)
             in batch.items()],
        )
        db.conn.executemany(
            "DELETE FROM task_payloads WHERE task_id = ?",
            [(task_id,) for task_id, state in batch.items() if state[6]],
        )
