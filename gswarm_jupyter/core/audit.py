"""The audit log: who did what through gswarm's routes, and whether it was allowed (migration 82).

Invariant: append-only. Events are inserted and read, never changed: the table's triggers refuse
any UPDATE or DELETE, so the log survives as written (and survives restarts, being SQLite).
Which calls are logged is the caller's choice (`should_log`): every write, every denial, and reads
only when asked.

`append` only notes the event (its time taken then) and returns: it never touches SQLite on the
caller's thread (the event loop, for a request). A `GroupWriter` inserts the noted rows in append
order, in one transaction per few milliseconds, on its own thread and connection. `query` flushes
first, so it sees every event appended before it. What a crash loses is at most the last interval
of audit rows, never a task or a key (those are committed where they are made). `close` writes
what is noted; an event appended after it is logged as a warning and dropped, never raised.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .clock import iso
from .db import Database, migration
from .groupwriter import Closed, GroupWriter
from .taskstore import parse_since

log = logging.getLogger(__name__)

DENIED_STATUSES = frozenset({401, 403, 429})

migration(
    82,
    """
    CREATE TABLE audit_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        time REAL NOT NULL,
        identity TEXT NOT NULL,
        key_id TEXT,
        method TEXT NOT NULL,
        route TEXT NOT NULL,
        resource TEXT NOT NULL,
        action TEXT NOT NULL,
        decision TEXT NOT NULL,
        status INTEGER NOT NULL
    );
    CREATE INDEX audit_events_time ON audit_events (time);
    CREATE INDEX audit_events_key ON audit_events (key_id, time);
    CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END
    """,
)


@dataclass(frozen=True)
class AuditEvent:
    identity: str
    key_id: str | None
    method: str
    route: str
    resources: tuple[str, ...]
    action: str
    status: int
    quota_refused: bool = False  # refused by the key's own bytes quota (a 507 of its max_bytes)

    @property
    def decision(self) -> str:
        """`denied` for refusals of credentials, scopes or quotas: 401, 403, 429, and the 507 of
        a key's `max_bytes` (not a 507 of a full device, which refuses anyone)."""
        return "denied" if self.status in DENIED_STATUSES or self.quota_refused else "allowed"


def should_log(action: str, status: int, reads: bool = False) -> bool:
    """Every write and every denial; reads only when `reads`."""
    return action != "read" or status in DENIED_STATUSES or reads


_Row = tuple[float, str, str | None, str, str, str, str, str, int]


class AuditLog:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock
        self.writer: GroupWriter[list[_Row], _Row] = GroupWriter(
            db.path, batch=list, add=list.append, merge=lambda old, new: old + new, write=_insert,
            name="gswarm-audit-writer",
            what="audit events",
        )

    def append(self, event: AuditEvent) -> None:
        """Note `event`, timed now, for the writer thread (returns at once)."""
        row = (self.clock(), event.identity, event.key_id, event.method, event.route,
               ",".join(event.resources), event.action, event.decision, event.status)
        try:
            self.writer.note(row)
        except Closed:
            log.warning("%s %s: not written to the audit log: it is closed", event.method,
                        event.route)

    def flush(self) -> None:
        """Answer once every event appended so far is committed."""
        self.writer.flush()

    def close(self) -> None:
        """Write what is appended and stop the writer's thread (before the database closes)."""
        self.writer.close()

    def query(
        self,
        *,
        key_id: str | None = None,
        resource: str | None = None,
        decision: str | None = None,
        since: str | None = None,
        until: str | None = None,
        page: int = 1,
        per_page: int = 20,
        flush: bool = True,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of events (oldest first) matching every filter given, and how many match
        (every event appended before the call included: it waits for the writer's group,
        unless the caller flushed just before, off the event loop)."""
        if flush:
            self.flush()
        where, params = [], []
        if key_id is not None:
            where.append("key_id = ?")
            params.append(key_id)
        if resource is not None:
            where.append("instr(',' || resource || ',', ?) > 0")
            params.append(f",{resource},")
        if decision is not None:
            where.append("decision = ?")
            params.append(decision)
        if since is not None:
            where.append("time >= ?")
            params.append(parse_since(since, "since"))
        if until is not None:
            where.append("time <= ?")
            params.append(parse_since(until, "until"))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        counted = self.db.one(f"SELECT COUNT(*) FROM audit_events{clause}", tuple(params))
        total = counted[0] if counted is not None else 0
        rows = self.db.all(
            f"SELECT * FROM audit_events{clause} ORDER BY seq LIMIT ? OFFSET ?",
            (*params, per_page, (page - 1) * per_page),
        )
        return [_event(r) for r in rows], int(total)


def _insert(db: Database, rows: list[_Row]) -> None:
    with db.transaction():
        db.conn.executemany(
            "INSERT INTO audit_events (time, identity, key_id, method, route, resource, action, "
            "decision, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def _event(row: Any) -> dict[str, Any]:
    return {
        "time": iso(row["time"]),
        "identity": row["identity"],
        "key_id": row["key_id"],
        "method": row["method"],
        "route": row["route"],
        "resource": row["resource"],
        "action": row["action"],
        "decision": row["decision"],
        "status": row["status"],
    }
