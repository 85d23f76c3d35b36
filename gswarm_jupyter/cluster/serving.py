"""The serving component the server context owns: the weight source, the services and the
compute plane over them, started and stopped together."""

from __future__ import annotations

from typing import Any

from ..core.compute_store import RequestMap, SessionStore
from ..core.db import Database
from ..core.serving_api import ServiceCreate
from .compute import ComputePlane
from .executor import TaskExecutor
from .runtime import ClusterRuntime
from .services import ServiceManager
from .weights import WeightSource


class Serving:
    def __init__(
        self,
        runtime: ClusterRuntime,
        weights: WeightSource,
        db: Database,
        tasks: TaskExecutor | None,
        compute_url: str,
    ) -> None:
        self.weights = weights
        self.services = ServiceManager(runtime, weights, compute_url)
        self.compute = ComputePlane(
            self.services, weights, SessionStore(db), RequestMap(db), tasks, runtime.nodes
        )

    async def start(self) -> None:
        await self.compute.start()

    async def stop(self) -> None:
        await self.compute.stop()

    def in_use(self, model_name: str, node: str, device: str) -> bool:
        """Whether a copy must stay: a replica loaded from it, or a live session pinning the model."""
        for service in self.services.list(model_name):
            for r in service.replicas:
                if (r.node, r.device) == (node, device) and r.status in ("loading", "running", "stopping"):
                    return True
        return bool(self.compute.sessions.live_for_model(model_name))

    async def start_service(self, req: ServiceCreate) -> dict[str, Any]:
        """`POST /services`: a registered model on the requested devices."""
        model = await self.weights.resolve(req.model_name)
        service = await self.services.start(model, req.config, req.nodes, req.device)
        return self.services.record(service)
