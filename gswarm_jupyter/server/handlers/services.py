"""Service routes (control plane): thin adapters over `ServiceManager`."""

from __future__ import annotations

from ...core.pagination import paginate
from ...core.serving_api import (
    ServiceCreate,
    ServiceList,
    ServiceQuery,
    ServiceRecord,
    ServiceStatus,
    ServiceStopped,
)
from ..base import GswarmHandler
from ..routes import CONTROL, Op, Route, resource_links


class _Services(GswarmHandler):
    auth_resource = "gswarm:models"

    @property
    def manager(self):  # type: ignore[no-untyped-def]
        return self.gswarm.services.services


class ServicesHandler(_Services):
    def get(self) -> None:
        q = self.query(ServiceQuery)
        services = [
            self.manager.record(s)
            for s in self.manager.list(q.model_name)
            if q.status in (None, s.status)
        ]
        self.reply(paginate(services, q, "services"))

    async def post(self) -> None:
        req = self.body(ServiceCreate)
        service = await self.gswarm.services.start_service(req)
        location = f"{self.base_url.rstrip('/')}{CONTROL}/services/{service['service_id']}"
        self.reply(service, 201, {"Location": location})


class ServiceHandler(_Services):
    def get(self, service_id: str) -> None:
        self.reply(self.manager.record(self.manager.get(service_id)))

    async def delete(self, service_id: str) -> None:
        self.reply(await self.manager.stop(service_id))


class ServiceStatusHandler(_Services):
    async def get(self, service_id: str) -> None:
        self.reply(await self.manager.status(service_id))


routes = [
    Route(
        f"{CONTROL}/services",
        ServicesHandler,
        {
            "get": Op("Services, filtered by model_name and status", ServiceList, query=ServiceQuery,
                      errors=(400,)),
            "post": Op("Start a service: the model on devices of nodes, batched (201 once it "
                       "answers)", ServiceRecord, body=ServiceCreate, status=201,
                       links=resource_links(f"{CONTROL}/services/{{service_id}}", "service_id",
                                            "service_id", ("status",)),
                       errors=(400, 404, 501, 502, 503, 507)),
        },
        tag="services",
    ),
    Route(
        f"{CONTROL}/services/{{service_id}}",
        ServiceHandler,
        {
            "get": Op("One service and its replicas", ServiceRecord, errors=(404,)),
            "delete": Op("Drain, then stop and free its device memory", ServiceStopped,
                         errors=(404,)),
        },
        tag="services",
    ),
    Route(
        f"{CONTROL}/services/{{service_id}}/status",
        ServiceStatusHandler,
        {"get": Op("Status, requests served, queue depth, p50/p99 latency (s), batch sizes",
                   ServiceStatus, errors=(404,))},
        tag="services",
    ),
]
