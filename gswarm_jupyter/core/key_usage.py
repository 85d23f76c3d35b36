"""What each API key has made: the tasks it queued, the chunks and models it placed (migration 81).

Invariant: usage is measured now, from the ledger and the live state: a task counts while the
queue holds it pending or running, a chunk or model while the registry still has it, with the
size the registry says now. A ledger row of a finished task is dropped when it is next counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from .chunks import ChunkRegistry
from .db import Database, migration
from .modelregistry import ModelRegistry
from .tasks import TaskQueue

Kind = Literal["task", "chunk", "model"]

migration(
    81,
    """
    CREATE TABLE key_objects (
        key_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        ref TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (key_id, kind, ref)
    )
    """,
)


class KeyUsage:
    """The ledger of what keys made, read against the task queue and the registries."""

    def __init__(
        self,
        db: Database,
        queue: TaskQueue,
        chunks: ChunkRegistry,
        models: ModelRegistry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.queue = queue
        self.chunks = chunks
        self.models = models
        self.clock = clock

    def record(self, key_id: str, kind: Kind, ref: str) -> None:
        """`key_id` made `ref` (a task id, chunk id or model name)."""
        self.db.execute(
            "INSERT OR IGNORE INTO key_objects (key_id, kind, ref, created_at) VALUES (?, ?, ?, ?)",
            (key_id, kind, ref, self.clock()),
        )

    def _refs(self, key_id: str, kind: Kind) -> list[str]:
        rows = self.db.all(
            "SELECT ref FROM key_objects WHERE key_id = ? AND kind = ?", (key_id, kind)
        )
        return [r["ref"] for r in rows]

    def _forget(self, key_id: str, kind: Kind, refs: list[str]) -> None:
        for ref in refs:
            self.db.execute(
                "DELETE FROM key_objects WHERE key_id = ? AND kind = ? AND ref = ?",
                (key_id, kind, ref),
            )

    def concurrent_tasks(self, key_id: str) -> int:
        """The key's tasks that are pending or running now."""
        active, done = 0, []
        for task_id in self._refs(key_id, "task"):
            if task_id in self.queue and not self.queue.get(task_id).finished:
                active += 1
            else:
                done.append(task_id)
        self._forget(key_id, "task", done)
        return active

    def bytes_placed(self, key_id: str) -> int:
        """Bytes of the chunks and models the key placed that exist now."""
        total, gone_chunks, gone_models = 0, [], []
        for chunk_id in self._refs(key_id, "chunk"):
            if self.chunks.exists(chunk_id):
                total += int(self.chunks.row(chunk_id)["size"] or 0)
            else:
                gone_chunks.append(chunk_id)
        for name in self._refs(key_id, "model"):
            if self.models.exists(name):
                total += int(self.models.row(name)["size"] or 0)
            else:
                gone_models.append(name)
        self._forget(key_id, "chunk", gone_chunks)
        self._forget(key_id, "model", gone_models)
        return total

    def owner_of(self, ref: str) -> str | None:
        """The key that made the chunk or model `ref`, if a key did."""
        row = self.db.one(
            "SELECT key_id FROM key_objects WHERE ref = ? AND kind IN ('chunk', 'model') "
            "ORDER BY created_at LIMIT 1",
            (ref,),
        )
        return None if row is None else str(row["key_id"])

    def bytes_on(self, key_id: str, node: str, device: str) -> int:
        """Bytes of the key's model copies and chunks on `node:device` now (lost copies aside)."""
        models = self.db.one(
            "SELECT COALESCE(SUM(l.size), 0) AS n FROM key_objects k JOIN model_locations l "
            "ON l.name = k.ref WHERE k.key_id = ? AND k.kind = 'model' AND l.node = ? "
            "AND l.device = ? AND l.status != 'lost'",
            (key_id, node, device),
        )
        chunks = self.db.one(
            "SELECT COALESCE(SUM(c.size), 0) AS n FROM key_objects k JOIN chunk_locations l "
            "ON l.chunk_id = k.ref JOIN chunks c ON c.chunk_id = l.chunk_id WHERE k.key_id = ? "
            "AND k.kind = 'chunk' AND l.node = ? AND l.device = ? AND l.status != 'lost'",
            (key_id, node, device),
        )
        return int(models["n"] if models else 0) + int(chunks["n"] if chunks else 0)
