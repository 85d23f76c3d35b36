"""The model registry: models and where their copies are, durable in SQLite (migration 20).

The bytes live on the nodes; this module knows what a model is and where its copies are.
A location's status is `ready`, `copying` (a task is writing it) or `lost` (a memory copy on a
worker that restarted). A copy that failed or was cancelled leaves no location.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, Literal

from .clock import iso, iso_or_none
from .db import Database, dumps, loads, migration
from .errors import Conflict, ModelNotFound
from .locations import LocationTable
from .redact import redact_url

LocationStatus = Literal["ready", "copying", "lost"]
ModelStatus = Literal["ready", "downloading", "copying", "failed", "lost", "unavailable"]

migration(
    20,
    """
CREATE TABLE models (
    name TEXT PRIMARY KEY,
    model_type TEXT,
    source_url TEXT NOT NULL,
    format TEXT,
    size INTEGER,
    checksum TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    metadata TEXT NOT NULL,
    error TEXT,
    task_id TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE model_locations (
    name TEXT NOT NULL REFERENCES models (name) ON DELETE CASCADE,
    node TEXT NOT NULL,
    device TEXT NOT NULL,
    status TEXT NOT NULL,
    size INTEGER,
    worker TEXT,
    task_id TEXT,
    updated_at REAL NOT NULL,
    last_used REAL NOT NULL,
    PRIMARY KEY (name, node, device)
)
""",
)

_UPDATABLE = frozenset(
    {"model_type", "format", "size", "checksum", "version", "metadata", "error", "task_id"}
)
_JSON = frozenset({"metadata", "error"})


def model_status(row: sqlite3.Row, locations: list[sqlite3.Row]) -> ModelStatus:
    """Derived: a ready copy makes the model ready, whatever else is going on."""
    statuses = {loc["status"] for loc in locations}
    if "ready" in statuses:
        return "ready"
    if "copying" in statuses:
        return "downloading" if row["checksum"] is None else "copying"
    if row["error"] is not None:
        return "failed"
    if "lost" in statuses:
        return "lost"
    return "unavailable"


class ModelRegistry:
    """Models and their locations; records come out as the API shows them."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.copies = LocationTable(db, "model_locations", "name", sized=True)

    # -- models -------------------------------------------------------------------------------

    def create(
        self, name: str, *, source_url: str, model_type: str | None, metadata: dict[str, Any]
    ) -> None:
        """A new entry; a taken name is `Conflict`."""
        now = time.time()
        try:
            self.db.execute(
                "INSERT INTO models (name, model_type, source_url, metadata, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (name, model_type, source_url, dumps(metadata), now, now),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"model {name!r} already exists", {"model_name": name}) from None

    def row(self, name: str) -> sqlite3.Row:
        row = self.db.one("SELECT * FROM models WHERE name = ?", (name,))
        if row is None:
            raise ModelNotFound(f"unknown model {name!r}", {"model_name": name})
        return row

    def exists(self, name: str) -> bool:
        return self.db.one("SELECT 1 FROM models WHERE name = ?", (name,)) is not None

    def names(self) -> list[str]:
        return [r[0] for r in self.db.all("SELECT name FROM models ORDER BY created_at, name")]

    def update(self, name: str, **fields: Any) -> None:
        """Set measured fields (`model_type`, `format`, `size`, `checksum`, `version`,
        `metadata`, `error`, `task_id`)."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        if not fields:
            return
        names = sorted(fields)
        values = [dumps(fields[k]) if k in _JSON and fields[k] is not None else fields[k]
                  for k in names]
        sets = ", ".join(f"{k} = ?" for k in names)
        self.db.execute(
            f"UPDATE models SET {sets}, updated_at = ? WHERE name = ?",
            (*values, time.time(), name),
        )

    def delete(self, name: str) -> None:
        self.db.execute("DELETE FROM models WHERE name = ?", (name,))

    # -- records ------------------------------------------------------------------------------

    def record(self, name: str, services: dict[str, str] | None = None) -> dict[str, Any]:
        """The API's model record."""
        row = self.row(name)
        locations = self.copies.of(name)
        record: dict[str, Any] = {
            "model_name": row["name"],
            "model_type": row["model_type"],
            "model_size": row["size"],
            "format": row["format"],
            "checksum": row["checksum"],
            "locations": [location_record(loc) for loc in locations],
            "services": dict(services or {}),
            "status": model_status(row, locations),
            "version": row["version"],
            "metadata": loads(row["metadata"]),
            "source_url": redact_url(row["source_url"]),  # rows from before redaction too
            "created_at": iso(row["created_at"]),
            "updated_at": iso(row["updated_at"]),
        }
        if row["task_id"] is not None:
            record["task_id"] = row["task_id"]
        if row["error"] is not None:
            record["error"] = loads(row["error"])
        return record


def location_record(loc: sqlite3.Row) -> dict[str, Any]:
    """One entry of `locations`: `{device, status, size, updated_at, last_used}`."""
    out = {
        "device": f"{loc['node']}:{loc['device']}",
        "status": loc["status"],
        "size": loc["size"],
        "updated_at": iso(loc["updated_at"]),
        "last_used": iso_or_none(loc["last_used"]),
    }
    if loc["task_id"] is not None and loc["status"] == "copying":
        out["task_id"] = loc["task_id"]
    return out
