"""New versions and derived models, written by training and optimisation on a node's disk and
recorded here in the model store.

Coherence: when a new version is recorded, every other ready copy is refreshed in place to the
new bytes (worker to worker, from the new disk copy), so no copy ever serves an older version under
the new one's number; a copy that cannot be refreshed is dropped. Then the model's users hear of
it (services reload their replicas).
"""

from __future__ import annotations

import logging
from typing import Any

from ...core.db import loads
from ...core.errors import Conflict
from ...core.names import check_model_name
from ..runtime.executor import Job
from ..runtime.signals import TaskSignal
from .model_users import ModelUsers
from .modelstore import ModelStore
from .weight_ops import read_weights, write_weights

log = logging.getLogger(__name__)


class ModelVersions:
    def __init__(self, store: ModelStore, users: ModelUsers) -> None:
        self.store = store
        self.users = users

    async def write_version(self, job: Job, name: str, node: str, version: int,
                            stored: dict[str, Any]) -> dict[str, Any]:
        """Record `version` of `name`, already written on `node`'s disk by a worker op of `job`
        (which holds the `model:<name>` lock); refresh the other copies, then tell the users."""
        store, registry = self.store, self.store.registry
        if not registry.exists(name):  # deleted with force meanwhile
            await store.engine.drop_quietly(name, node, "disk")
            raise Conflict(f"model {name} was deleted while it trained", {"model_name": name})
        row = registry.row(name)
        if row["version"] != version - 1:
            raise Conflict(f"model {name} is at version {row['version']}, not {version - 1}",
                           {"model_name": name, "version": row["version"]})
        store.measured(name, stored, dict(loads(row["metadata"]) or {}))
        registry.update(name, version=version)
        registry.copies.put(name, node, "disk", "ready", size=stored["size"],
                            worker=stored.get("worker"), task_id=job.task.task_id)
        store.emit(name, "location_added", device=f"{node}:disk", status="ready")
        refreshed, dropped = await self._refresh_copies(job, name, node, version)
        store.emit(name, "updated", version=version, checksum=stored["checksum"],
                   refreshed=refreshed, dropped=dropped)
        await self.users.model_updated(name, version)
        return {"version": version, "refreshed": refreshed, "dropped": dropped}

    async def _refresh_copies(self, job: Job, name: str, node: str,
                              version: int) -> tuple[list[str], list[str]]:
        """Rewrite every other ready copy of `name` from the new disk copy on `node`."""
        copies = self.store.registry.copies
        others = [loc for loc in copies.of(name)
                  if (loc["node"], loc["device"]) != (node, "disk") and loc["status"] == "ready"]
        refreshed: list[str] = []
        dropped: list[str] = []
        if not others:
            return refreshed, dropped
        # A signal of its own: refreshing is not cancellable and its progress is not the task's.
        signal = TaskSignal(f"{job.task.task_id}-refresh")
        data = job.submit(read_weights, name, "disk", node=node, cancellable=False)
        for loc in others:
            where = f"{loc['node']}:{loc['device']}"
            try:
                write = job.submit(write_weights, name, loc["device"], data, signal, version,
                                   node=loc["node"], cancellable=False)
                stored = await job.wait(write)
            except Exception as exc:
                log.warning("gswarm: could not refresh %s on %s to v%s: %s", name, where,
                            version, exc)
                await self.store.engine.remove_copy(name, loc["node"], loc["device"],
                                                    reason="stale")
                dropped.append(where)
                continue
            copies.put(name, loc["node"], loc["device"], "ready", size=stored["size"],
                       worker=stored["worker"], task_id=job.task.task_id)
            refreshed.append(where)
        return refreshed, dropped

    def add_derived(self, name: str, origin: str, node: str, stored: dict[str, Any],
                    metadata: dict[str, Any]) -> dict[str, Any]:
        """Register `name`, derived from `origin` (e.g. quantised) and already written as v1 on
        `node`'s disk, with that copy ready. A taken name is `Conflict`."""
        check_model_name(name, "optimized_model_id")
        store, registry = self.store, self.store.registry
        row = registry.row(origin)
        registry.create(name, source_url=f"derived://{origin}?version={row['version']}",
                        model_type=row["model_type"], metadata=metadata)
        store.measured(name, stored, metadata)
        registry.copies.put(name, node, "disk", "ready", size=stored["size"],
                            worker=stored.get("worker"))
        store.emit(name, "registered", status="ready")
        store.emit(name, "location_added", device=f"{node}:disk", status="ready")
        return store.record(name)

    async def drop_written(self, name: str, node: str, device: str = "disk") -> None:
        """Remove bytes a worker op wrote that the registry does not record."""
        await self.store.engine.drop_quietly(name, node, device)
