"""Tasks and their history, durable in the server's SQLite database (migrations 1 and 3).

A task row is small and written whole once; later changes update only the columns that change
(progress alone, or the state columns). `save` writes at once, on the caller's thread; `save_later`
inserts a new task at once (committed before it answers) and leaves later changes to the
`TaskWriter`, which groups them into one transaction per few milliseconds on its own thread
(`flush` waits for them). A task's payload is written once, in its own table, and
deleted when the task finishes. `prune` deletes finished tasks only, never pending or running ones.
"""

from __future__ import annotations

import math
import sqlite3
from datetime import datetime, timezone

from .db import Database, dumps, loads, migration
from .errors import InvalidRequest
from .tasks import FINISHED, Task
from .taskwriter import TaskWriter

migration(
    1,
    """
CREATE TABLE tasks (
    task_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    task_type TEXT NOT NULL,
    priority TEXT NOT NULL,
    status TEXT NOT NULL,
    dependencies TEXT NOT NULL,
    resources TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    completed_at REAL,
    progress INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    error TEXT,
    params TEXT NOT NULL,
    locks TEXT NOT NULL
);
CREATE INDEX tasks_status ON tasks (status);
CREATE INDEX tasks_completed_at ON tasks (completed_at)
""",
)

migration(
    3,
    """
CREATE TABLE task_payloads (
    task_id TEXT PRIMARY KEY REFERENCES tasks (task_id) ON DELETE CASCADE,
    body TEXT NOT NULL
)
""",
)

_COLUMNS = (
    "task_id, seq, task_type, priority, status, dependencies, resources, created_at, started_at, "
    "completed_at, progress, result, error, params, locks"
)


_FINISHED_SQL = f"status IN ({', '.join(repr(s) for s in sorted(FINISHED))})"

PRUNE_BATCH = 500  # rows one `prune` call deletes at most, so no call holds the loop for long


class TaskStore:
    """One row per task, its payload apart; `save` is the queue's listener."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.writer = TaskWriter(db.path)

    def record_new(self, task: Task) -> None:
        """Commit a new task's row and payload now (the queue's journal: before `submit` answers)."""
        self._add(task)

    def save_later(self, task: Task) -> None:
        """Note a change of a recorded task for the writer (grouped, committed within ms)."""
        self.writer.put(task)

    def flush(self) -> None:
        """Answer once every change noted by `save_later` is committed (blocks: call it on a
        thread from the event loop)."""
        self.writer.flush()

    def close(self) -> None:
        """Write what is noted and stop the writer's thread."""
        self.writer.close()

    def save(self, task: Task) -> None:
        """Persist the change the queue just announced, rewriting as little as it can."""
        if self._save_progress(task) or self._save_state(task):
            return
        self._add(task)

    def _add(self, task: Task) -> None:
        """The task's row and its payload, in one transaction."""
        with self.db.transaction():
            self._insert(task)
            if task.payload and not task.finished:
                self.db.execute(
                    "INSERT INTO task_payloads (task_id, body) VALUES (?, ?)",
                    (task.task_id, task.encoded_payload if task.encoded_payload is not None
                     else dumps(task.payload)),
                )

    def _save_progress(self, task: Task) -> bool:
        """A change of progress alone (the status stored is the task's)."""
        cursor = self.db.execute(
            "UPDATE tasks SET progress = ? WHERE task_id = ? AND status = ?",
            (task.progress, task.task_id, task.status),
        )
        return cursor.rowcount > 0

    def _save_state(self, task: Task) -> bool:
        """A change of status, with the columns that change with it; a finished task's payload
        goes."""
        cursor = self.db.execute(
            "UPDATE tasks SET status = ?, started_at = ?, completed_at = ?, progress = ?, "
            "result = ?, error = ? WHERE task_id = ?",
            (task.status, task.started_at, task.completed_at, task.progress,
             dumps(task.result), dumps(task.error), task.task_id),
        )
        if cursor.rowcount == 0:
            return False
        if task.finished:
            self.db.execute("DELETE FROM task_payloads WHERE task_id = ?", (task.task_id,))
        return True

    def _insert(self, task: Task) -> None:
        self.db.execute(
            f"INSERT INTO tasks ({_COLUMNS}) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                task.task_id,
                task.seq,
                task.task_type,
                task.priority,
                task.status,
                dumps(task.dependencies),
                dumps(task.resources),
                task.created_at,
                task.started_at,
                task.completed_at,
                task.progress,
                dumps(task.result),
                dumps(task.error),
                dumps(task.params),
                dumps(task.locks),
            ),
        )

    def load(self) -> list[Task]:
        """Every task, with the payloads of those not finished."""
        rows = self.db.all(
            f"SELECT {_COLUMNS}, body FROM tasks LEFT JOIN task_payloads USING (task_id) "
            "ORDER BY seq"
        )
        tasks = []
        for row in rows:
            task = _task(row)
            task.payload = loads(row["body"]) or {}
            tasks.append(task)
        return tasks

    def prune(self, before: float, keep: int, batch: int = PRUNE_BATCH) -> int:
        """Delete (with their payloads) up to `batch` finished tasks that finished before
        `before` or are not among the `keep` latest finished; answers how many went."""
        cursor = self.db.execute(
            "DELETE FROM tasks WHERE task_id IN ("
            f" SELECT task_id FROM tasks WHERE {_FINISHED_SQL} AND completed_at < ?"
            " UNION"
            f" SELECT task_id FROM (SELECT task_id FROM tasks WHERE {_FINISHED_SQL}"
            "  ORDER BY completed_at DESC, seq DESC LIMIT -1 OFFSET ?)"
            " LIMIT ?)",
            (before, max(0, keep), batch),
        )
        return cursor.rowcount

    def history(
        self, limit: int = 100, since: float | None = None, status: str | None = None
    ) -> list[Task]:
        """Finished tasks, the most recently finished first."""
        statuses = [status] if status else sorted(FINISHED)
        sql = (
            f"SELECT {_COLUMNS} FROM tasks WHERE status IN ({','.join('?' * len(statuses))})"
            + (" AND completed_at >= ?" if since is not None else "")
            + " ORDER BY completed_at DESC, seq DESC LIMIT ?"
        )
        params: list[object] = [*statuses]
        if since is not None:
            params.append(since)
        params.append(limit)
        return [_task(row) for row in self.db.all(sql, tuple(params))]


def parse_since(text: str, field: str = "since") -> float:
    """Epoch seconds, or an ISO 8601 time (UTC unless it says otherwise), as epoch seconds."""
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(value):
            return value
        raise InvalidRequest(f"invalid {field} {text!r}: not a finite number", {"field": field})
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(
            f"invalid {field} {text!r}: expected epoch seconds or an ISO 8601 time",
            {"field": field},
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _task(row: sqlite3.Row) -> Task:
    return Task(
        task_id=row["task_id"],
        task_type=row["task_type"],
        seq=row["seq"],
        priority=row["priority"],
        status=row["status"],
        dependencies=loads(row["dependencies"]),
        resources=loads(row["resources"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        progress=row["progress"],
        result=loads(row["result"]),
        error=loads(row["error"]),
        params=loads(row["params"]),
        locks=loads(row["locks"]),
    )
