"""The server's one SQLite database: WAL, one connection for the server's event-loop thread (the
group writers of task changes and audit rows, `core.groupwriter`, open their own), numbered
migrations applied once each, in order.

Each feature owns a block of migration numbers: 1-19 tasks and the data pool, 20-39 the model
registry, 40-59 the profiler, 60-79 the compute plane, 80-99 API keys and the audit log.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MIGRATIONS: dict[int, str] = {}


def migration(number: int, sql: str) -> None:
    """Declare migration `number` (a script of one or more statements). Call at import time."""
    if number in MIGRATIONS and MIGRATIONS[number] != sql:
        raise ValueError(f"migration {number} is declared twice")
    MIGRATIONS[number] = sql


class Database:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (number INTEGER PRIMARY KEY)")

    def migrate(self) -> list[int]:
        """Apply every declared migration not applied yet; answer the numbers applied."""
        done = {r[0] for r in self.conn.execute("SELECT number FROM schema_migrations")}
        applied = []
        for number in sorted(MIGRATIONS):
            if number in done:
                continue
            with self.transaction():
                for statement in _statements(MIGRATIONS[number]):
                    self.conn.execute(statement)
                self.conn.execute("INSERT INTO schema_migrations VALUES (?)", (number,))
            applied.append(number)
        return applied

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing: a failure midway leaves the database as it was."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def execute(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def one(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, params).fetchone()

    def all(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def close(self) -> None:
        self.conn.close()


def dumps(value: Any) -> str:
    """JSON for a TEXT column."""
    return json.dumps(value, separators=(",", ":"), default=str)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";\n") if s.strip()]
