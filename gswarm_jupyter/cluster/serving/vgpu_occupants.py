"""What sits on a virtual GPU (services, model copies, chunks), and clearing it for a forced
delete: services stop first (their copies are then no longer in use), then copies go through
the copy engine's rules (never a last ready copy: the caller checks `last_copies` before)."""

from __future__ import annotations

from ..storage.datapool import DataPool
from ..storage.modelstore import ModelStore
from .services import ServiceManager


class VgpuOccupants:
    def __init__(self, services: ServiceManager, models: ModelStore, data: DataPool) -> None:
        self.services = services
        self.models = models
        self.data = data

    def on_device(self, node: str, device: str) -> dict[str, list[str]]:
        services = [s.service_id for s in self.services.list()
                    if s.status != "stopped"
                    and any((r.node, r.device) == (node, device) for r in s.replicas)]
        models, chunks, last = [], [], []
        for engine, found in ((self.models.engine, models), (self.data.engine, chunks)):
            for loc in engine.copies.on_device(node, device):
                if loc["status"] == "lost":
                    continue
                key = loc[engine.copies.key]
                found.append(key)
                if engine.last_ready(loc):
                    last.append(f"{engine.payload.noun} {key}")
        return {"services": services, "models": models, "chunks": chunks, "last_copies": last}

    async def clear(self, node: str, device: str) -> dict[str, list[str]]:
        held = self.on_device(node, device)
        for service_id in held["services"]:
            await self.services.stop(service_id)
        for name in held["models"]:
            await self.models.drop_copy(name, f"{node}:{device}", force=True)
        for chunk_id in held["chunks"]:
            engine = self.data.engine
            async with engine.locks(chunk_id):
                await engine.cancel([t for t in engine.tasks_using(chunk_id)
                                     if f"{node}:{device}" in t.resources.get("devices", [])])
                await engine.remove_copy(chunk_id, node, device, reason="vgpu deleted")
        return {k: held[k] for k in ("services", "models", "chunks")}
