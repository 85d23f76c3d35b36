"""Task state changes written in groups, on a thread of their own, off the event loop.

`put(task)` only notes the task's latest state (a later change of the same task replaces the one
not written yet); the writer thread commits every noted change in one transaction at most every
`interval` seconds, over its own SQLite connection. Changes reach the disk in the order they were
noted, and a change noted before `flush()` is committed when `flush()` answers. A new task's row is
never written here: the store inserts it, committed, before anyone is told the task exists; this
writer only updates rows (a row already pruned is simply not updated). What a crash loses is at
most the last `interval` of status and progress changes, never a task.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from .db import Database, dumps
from .tasks import Task

INTERVAL = 0.005  # seconds between two group commits while changes keep coming

_State = tuple[str, float | None, float | None, int, Any, Any, bool]


class TaskWriter:
    """Groups task updates into one transaction per `interval`, written on a daemon thread."""

    def __init__(self, path: Path | str, interval: float = INTERVAL) -> None:
        self.path = Path(path)
        self.interval = interval
        self._noted: dict[str, _State] = {}  # task id -> its latest state not written yet
        self._lock = threading.Condition()
        self._noted_count = 0  # changes noted so far
        self._written_count = 0  # changes committed so far (by `put` order)
        self._closed = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def put(self, task: Task) -> None:
        """Note `task`'s state (status, times, progress, result, error) to be written soon."""
        state: _State = (task.status, task.started_at, task.completed_at, task.progress,
                         task.result, task.error, task.finished)
        with self._lock:
            if self._closed:
                raise RuntimeError("the task writer is closed")
            idle = not self._noted  # only an idle writer waits to be woken
            self._noted[task.task_id] = state
            self._noted_count += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="gswarm-task-writer",
                                                daemon=True)
                self._thread.start()
            elif idle:
                self._lock.notify_all()

    def flush(self, timeout: float | None = 30.0) -> None:
        """Answer once every change noted so far is committed (re-raises a write's failure)."""
        with self._lock:
            target = self._noted_count
            self._lock.notify_all()
            done = self._lock.wait_for(
                lambda: self._written_count >= target or self._error is not None
                or self._thread is None, timeout)
            if self._error is not None:
                raise RuntimeError("writing task changes failed") from self._error
            if not done:
                raise TimeoutError("task changes were not written in time")

    def close(self) -> None:
        """Write what is noted, then stop the thread (a closed writer takes no more changes)."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        db = Database(self.path)
        try:
            while True:
                with self._lock:
                    self._lock.wait_for(lambda: self._noted or self._closed)
                    if not self._noted:  # closed, and everything is written
                        return
                    batch, self._noted = self._noted, {}
                    counted = self._noted_count
                try:
                    _write(db, batch)
                except Exception as exc:  # noqa: BLE001 (kept for `flush`, which raises it)
                    with self._lock:
                        self._error = exc
                    return
                with self._lock:
                    self._written_count = counted
                    self._lock.notify_all()
                    closed = self._closed
                if not closed:
                    time.sleep(self.interval)  # let the next group gather
        finally:
            db.close()
            with self._lock:
                self._thread = None
                self._lock.notify_all()


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
