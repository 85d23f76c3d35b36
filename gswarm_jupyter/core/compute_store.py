"""The compute plane's durable state: sessions (with their expiry and the replica they are pinned
to) and the map from async inference request ids to their tasks. Migrations 60, 61 and 63."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .clock import iso
from .db import Database, migration
from .errors import NotFound

migration(
    60,
    """CREATE TABLE compute_sessions (
        session_id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        model_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX compute_sessions_model ON compute_sessions (model_id)""",
)
migration(
    61,
    """CREATE TABLE compute_requests (
        request_id TEXT PRIMARY KEY,
        task_id TEXT NOT NULL,
        model_id TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
)

migration(63, "ALTER TABLE compute_sessions ADD COLUMN replica_id TEXT")


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    user_id: str
    model_id: str
    created_at: float
    expires_at: float
    replica_id: str | None = None  # the replica its requests stay on (None: not pinned yet)

    def record(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "user_id": self.user_id,
            "model_id": self.model_id,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
        }


class SessionStore:
    """Sessions in SQLite; an expired session is gone (read as unknown, and swept)."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    def create(self, user_id: str, model_id: str, ttl_seconds: float) -> Session:
        now = self.clock()
        session = Session(f"sess_{secrets.token_hex(8)}", user_id, model_id, now, now + ttl_seconds)
        self.db.execute(
            "INSERT INTO compute_sessions (session_id, user_id, model_id, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (session.session_id, user_id, model_id, session.created_at, session.expires_at),
        )
        return session

    def pin(self, session_id: str, replica_id: str) -> None:
        """Requests of the session stay on `replica_id` from now on."""
        self.db.execute(
            "UPDATE compute_sessions SET replica_id = ? WHERE session_id = ?", (replica_id, session_id)
        )

    def get(self, session_id: str) -> Session:
        """A live session, or `NotFound` (unknown or expired)."""
        row = self.db.one("SELECT * FROM compute_sessions WHERE session_id = ?", (session_id,))
        if row is None or row["expires_at"] <= self.clock():
            raise NotFound(f"unknown or expired session {session_id!r}", {"session_id": session_id})
        return Session(**dict(row))

    def delete(self, session_id: str) -> Session:
        session = self.get(session_id)
        self.db.execute("DELETE FROM compute_sessions WHERE session_id = ?", (session_id,))
        return session

    def live_for_model(self, model_id: str) -> list[Session]:
        rows = self.db.all(
            "SELECT * FROM compute_sessions WHERE model_id = ? AND expires_at > ?",
            (model_id, self.clock()),
        )
        return [Session(**dict(r)) for r in rows]

    def sweep(self) -> list[str]:
        """Forget expired sessions; answer their ids."""
        now = self.clock()
        rows = self.db.all("SELECT session_id FROM compute_sessions WHERE expires_at <= ?", (now,))
        self.db.execute("DELETE FROM compute_sessions WHERE expires_at <= ?", (now,))
        return [r["session_id"] for r in rows]


class RequestMap:
    """`req_<hex>` ids of async inference requests and the tasks that run them."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    @staticmethod
    def new_id() -> str:
        return f"req_{secrets.token_hex(8)}"

    def add(self, request_id: str, task_id: str, model_id: str) -> None:
        self.db.execute(
            "INSERT INTO compute_requests VALUES (?, ?, ?, ?)",
            (request_id, task_id, model_id, self.clock()),
        )

    def task_id(self, request_id: str) -> str:
        row = self.db.one("SELECT task_id FROM compute_requests WHERE request_id = ?", (request_id,))
        if row is None:
            raise NotFound(f"unknown inference request {request_id!r}", {"request_id": request_id})
        return str(row["task_id"])
