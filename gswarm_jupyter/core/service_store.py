"""Services as they should run, durable across server restarts: one row per service (its model,
config, the nodes it may use and where each replica goes), from its successful start until it is
stopped. A server shutdown keeps the rows; the next start brings the services back. Migration 62.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .db import Database, dumps, loads, migration

migration(
    62,
    """CREATE TABLE compute_services (
        number INTEGER PRIMARY KEY AUTOINCREMENT,
        service_id TEXT NOT NULL UNIQUE,
        model TEXT NOT NULL,
        config TEXT NOT NULL,
        nodes TEXT,
        replicas TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
)


@dataclass(frozen=True, slots=True)
class StoredReplica:
    replica_id: str
    node: str
    device: str


@dataclass(frozen=True, slots=True)
class StoredService:
    number: int  # the service id's sequence number, never reused
    service_id: str
    model: dict[str, Any]  # the model spec the service was started with
    config: dict[str, Any]
    nodes: list[str] | None  # the nodes its replicas may run on (None: any node)
    replicas: list[StoredReplica] = field(default_factory=list)
    created_at: float = 0.0


class ServiceStore:
    """The `compute_services` table."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    def next_number(self) -> int:
        """One more than any service number ever stored (stopped services included)."""
        row = self.db.one("SELECT seq FROM sqlite_sequence WHERE name = 'compute_services'")
        return 1 + (int(row["seq"]) if row is not None else 0)

    def add(self, service: StoredService) -> None:
        now = self.clock()
        self.db.execute(
            "INSERT INTO compute_services VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (service.number, service.service_id, dumps(service.model), dumps(service.config),
             None if service.nodes is None else dumps(service.nodes),
             dumps([_replica_row(r) for r in service.replicas]), service.created_at or now, now),
        )

    def place(self, service_id: str, replicas: list[StoredReplica]) -> None:
        """Where the service's replicas run now (one moved to another node)."""
        self.db.execute(
            "UPDATE compute_services SET replicas = ?, updated_at = ? WHERE service_id = ?",
            (dumps([_replica_row(r) for r in replicas]), self.clock(), service_id),
        )

    def remove(self, service_id: str) -> None:
        self.db.execute("DELETE FROM compute_services WHERE service_id = ?", (service_id,))

    def all(self) -> list[StoredService]:
        """Every stored service, oldest first."""
        rows = self.db.all("SELECT * FROM compute_services ORDER BY number")
        return [
            StoredService(
                number=int(r["number"]),
                service_id=r["service_id"],
                model=loads(r["model"]),
                config=loads(r["config"]),
                nodes=loads(r["nodes"]),
                replicas=[StoredReplica(**x) for x in loads(r["replicas"])],
                created_at=float(r["created_at"]),
            )
            for r in rows
        ]


def _replica_row(replica: StoredReplica) -> dict[str, str]:
    return {"replica_id": replica.replica_id, "node": replica.node, "device": replica.device}
