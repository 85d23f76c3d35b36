"""One module per resource; each exports `routes`. `all_routes` is the extension's table."""

from __future__ import annotations

from ..base import GswarmHandler, NotFoundHandler
from ..routes import CONTROL, Op, Route
from . import (
    compute,
    dask_dashboard,
    data,
    inference,
    keys,
    models,
    profiler,
    prometheus,
    queue,
    resources,
    services,
    system,
    training,
    unserved,
    vgpus,
)

RESOURCE_MODULES = (
    system, compute, inference, training, services, profiler, models, data, queue, prometheus,
    unserved, keys, resources, vgpus,
)


class OpenAPIHandler(GswarmHandler):
    def get(self) -> None:
        from ..openapi import build

        document = self.settings.get("gswarm_openapi")
        if document is None:
            document = build(all_routes(), self.base_url)
            self.settings["gswarm_openapi"] = document
        self.finish(document)


OPENAPI = Route(
    f"{CONTROL}/openapi.json",
    OpenAPIHandler,
    {"get": Op("This OpenAPI document (both planes)", enveloped=False)},
)


def all_routes() -> list[Route]:
    """Every documented route, the OpenAPI document included."""
    return [route for module in RESOURCE_MODULES for route in module.routes] + [OPENAPI]


def tornado_handlers() -> list[tuple]:
    """The tornado table: documented routes first, the Dask dashboard's proxy (pages, not API
    operations: in no document), then NOT_FOUND for the rest of /gswarm/."""
    return (
        [route.tornado() for route in all_routes()]
        + dask_dashboard.tornado_handlers()
        + [(r"/gswarm/.*", NotFoundHandler, {})]
    )
