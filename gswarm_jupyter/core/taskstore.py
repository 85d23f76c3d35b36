"""Tasks and their history, durable in the server's SQLite database (migration 1)."""

from __future__ import annotations

import math
import sqlite3
from datetime import datetime, timezone

from .db import Database, dumps, loads, migration
from .errors import InvalidRequest
from .tasks import FINISHED, Task

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

_COLUMNS = (
    "task_id, seq, task_type, priority, status, dependencies, resources, created_at, started_at, "
    "completed_at, progress, result, error, params, locks"
)


class TaskStore:
    """One row per task; `save` is the queue's listener."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def save(self, task: Task) -> None:
        self.db.execute(
            f"INSERT OR REPLACE INTO tasks ({_COLUMNS}) VALUES "
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
        return [_task(row) for row in self.db.all(f"SELECT {_COLUMNS} FROM tasks ORDER BY seq")]

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
