"""Where the copies of an entry are: one table class over the data pool's `chunk_locations` and
the model registry's `model_locations`, rows keyed by (entry, node, device).

A location's status is the payload's ready word (`available` for chunks, `ready` for models), a
writing word (`copying`, `downloading`) while a task writes it, or `lost` (a memory copy of a
worker that is gone). Only `model_locations` has `size` and `last_used` columns; on the other
table they are ignored when written and absent when read.
"""

from __future__ import annotations

import sqlite3
import time

from .db import Database

MEMORY_DEVICES = ("dram", "gpu", "vgpu")  # prefixes of devices whose copies die with the worker


def is_memory_device(device: str) -> bool:
    """Whether a copy on `device` lives in a worker's memory (and dies with the worker)."""
    return device.startswith(MEMORY_DEVICES)


class LocationTable:
    """One locations table: `key` names its entry column (`chunk_id`, `name`)."""

    def __init__(self, db: Database, table: str, key: str, *, sized: bool) -> None:
        self.db = db
        self.table = table
        self.key = key
        self.sized = sized  # has `size` and `last_used` columns

    def of(self, entry: str) -> list[sqlite3.Row]:
        """Every copy of `entry`, by node and device."""
        return self.db.all(
            f"SELECT * FROM {self.table} WHERE {self.key} = ? ORDER BY node, device", (entry,)
        )

    def get(self, entry: str, node: str, device: str) -> sqlite3.Row | None:
        return self.db.one(
            f"SELECT * FROM {self.table} WHERE {self.key} = ? AND node = ? AND device = ?",
            (entry, node, device),
        )

    def all(self) -> list[sqlite3.Row]:
        return self.db.all(f"SELECT * FROM {self.table} ORDER BY {self.key}, node, device")

    def on_device(self, node: str, device: str) -> list[sqlite3.Row]:
        """Every copy on one device, least recently used first (where that is kept)."""
        order = f"last_used, {self.key}" if self.sized else self.key
        return self.db.all(
            f"SELECT * FROM {self.table} WHERE node = ? AND device = ? ORDER BY {order}",
            (node, device),
        )

    def put(
        self,
        entry: str,
        node: str,
        device: str,
        status: str,
        *,
        size: int | None = None,
        worker: str | None = None,
        task_id: str | None = None,
    ) -> None:
        """Record (or replace) the copy on `node:device`."""
        now = time.time()
        if self.sized:
            self.db.execute(
                f"INSERT OR REPLACE INTO {self.table} ({self.key}, node, device, status, size, "
                "worker, task_id, updated_at, last_used) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (entry, node, device, status, size, worker, task_id, now, now),
            )
        else:
            self.db.execute(
                f"INSERT OR REPLACE INTO {self.table} ({self.key}, node, device, status, worker, "
                "task_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (entry, node, device, status, worker, task_id, now),
            )

    def set_status(self, entry: str, node: str, device: str, status: str) -> None:
        self.db.execute(
            f"UPDATE {self.table} SET status = ?, updated_at = ? "
            f"WHERE {self.key} = ? AND node = ? AND device = ?",
            (status, time.time(), entry, node, device),
        )

    def touch(self, entry: str, node: str, device: str) -> None:
        """Mark a copy used now (for least-recently-used eviction)."""
        if self.sized:
            self.db.execute(
                f"UPDATE {self.table} SET last_used = ? "
                f"WHERE {self.key} = ? AND node = ? AND device = ?",
                (time.time(), entry, node, device),
            )

    def remove(self, entry: str, node: str, device: str) -> bool:
        cur = self.db.execute(
            f"DELETE FROM {self.table} WHERE {self.key} = ? AND node = ? AND device = ?",
            (entry, node, device),
        )
        return cur.rowcount > 0
