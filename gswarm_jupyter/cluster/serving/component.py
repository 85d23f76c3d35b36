"""The serving component the server context owns: the weight source, the services and the
compute plane over them, started and stopped together. Starting brings back the services stored
before the last shutdown (the keeper loads their replicas again); stopping frees their replicas
but keeps them stored. It is a user of the model store (`model_users.ModelUser`): copies its
replicas hold stay, a deleted model's services stop, and a new version of a model is reloaded
into its replicas."""

from __future__ import annotations

from typing import Any

from ...core.compute_store import RequestMap, SessionStore
from ...core.db import Database
from ...core.service_store import ServiceStore
from ...core.serving_api import ServiceCreate
from ..runtime.cluster import ClusterRuntime
from ..runtime.executor import TaskExecutor
from ..storage.engine import Reservations
from ..storage.model_users import ModelUsers
from ..storage.weights import WeightSource
from .compute_plane import ComputePlane, Quantizer
from .keeper import ServiceKeeper
from .services import ServiceManager


class Serving:
    def __init__(
        self,
        runtime: ClusterRuntime,
        weights: WeightSource,
        db: Database,
        tasks: TaskExecutor,
        compute_url: str,
        *,
        users: ModelUsers,
        quantize: Quantizer | None = None,
        reservations: Reservations | None = None,
    ) -> None:
        self.weights = weights
        self.services = ServiceManager(runtime, weights, ServiceStore(db), compute_url,
                                       reservations)
        self.keeper = ServiceKeeper(self.services, runtime.nodes)
        self.compute = ComputePlane(
            self.services, weights, SessionStore(db), RequestMap(db), tasks, runtime.nodes,
            quantize=quantize,
        )
        users.join(self)

    async def start(self) -> None:
        self.services.restore()
        await self.compute.start()
        await self.keeper.start()

    async def stop(self) -> None:
        await self.keeper.stop()
        await self.compute.stop()
        await self.services.shutdown()

    def in_use(self, model_name: str, node: str, device: str) -> bool:
        """Whether a copy must stay: a replica loaded from it, or a live session pinning the model."""
        for service in self.services.list(model_name):
            for r in service.replicas:
                if (r.node, r.device) == (node, device) and r.status in ("loading", "running", "stopping"):
                    return True
        return bool(self.compute.sessions.live_for_model(model_name))

    async def stop_model_services(self, model_name: str) -> None:
        """Stop every service of the model (it is being deleted)."""
        for service in self.services.list(model_name):
            await self.services.stop(service.service_id)

    async def model_updated(self, model_name: str, version: int) -> None:
        """A new version is stored: the model's replicas reload it between batches."""
        await self.services.reload_model(model_name, version)

    async def start_service(self, req: ServiceCreate) -> dict[str, Any]:
        """`POST /services`: a registered model on the requested devices."""
        model = await self.weights.resolve(req.model_name)
        service = await self.services.start(model, req.config, req.nodes, req.device)
        return self.services.record(service)
