"""Compute plane routes for models, inference, sessions and metrics: thin adapters over
`ComputePlane`."""

from __future__ import annotations

from ...core.serving_api import (
    AsyncAccepted,
    AsyncInferenceRequest,
    AsyncStatus,
    BatchInference,
    BatchResults,
    ComputeMetrics,
    HistoryQuery,
    InferenceRequest,
    InferenceResult,
    LoadedModels,
    ModelLoad,
    ModelLoaded,
    ModelUnloaded,
    MetricsHistory,
    SessionCreate,
    SessionRecord,
)
from ..base import GswarmHandler
from ..routes import COMPUTE, CONTROL, Link, Op, Route, resource_links, task_links


class _Compute(GswarmHandler):
    auth_resource = "gswarm:compute"

    @property
    def compute(self):  # type: ignore[no-untyped-def]
        return self.gswarm.services.compute


class ModelsHandler(_Compute):
    def get(self) -> None:
        self.reply({"models": self.compute.loaded()})

    async def post(self) -> None:
        self.reply(await self.compute.load(self.body(ModelLoad)), 201)


class ModelHandler(_Compute):
    async def delete(self, model_id: str) -> None:
        self.reply(await self.compute.unload(model_id))


class InferenceHandler(_Compute):
    async def post(self) -> None:
        self.reply(await self.compute.infer(self.body(InferenceRequest)))


class AsyncInferenceHandler(_Compute):
    def post(self) -> None:
        self.reply(self.compute.submit(self.body(AsyncInferenceRequest)), 202)


class InferenceStatusHandler(_Compute):
    def get(self, request_id: str) -> None:
        self.reply(self.compute.request_status(request_id))


class BatchInferenceHandler(_Compute):
    async def post(self) -> None:
        self.reply(await self.compute.batch(self.body(BatchInference).requests))


class SessionsHandler(_Compute):
    def post(self) -> None:
        self.reply(self.compute.open_session(self.body(SessionCreate)), 201)


class SessionHandler(_Compute):
    def delete(self, session_id: str) -> None:
        self.reply(self.compute.close_session(session_id))


class MetricsHandler(_Compute):
    def get(self) -> None:
        self.reply(self.compute.metrics())


class MetricsHistoryHandler(_Compute):
    def get(self) -> None:
        self.reply(self.compute.history(self.query(HistoryQuery)))


def _route(path: str, handler: type, ops: dict[str, Op]) -> Route:
    return Route(f"{COMPUTE}{path}", handler, ops, tag="compute")


routes = [
    _route("/models", ModelsHandler, {
        "get": Op("Loaded models", LoadedModels),
        "post": Op("Load: register if needed, start a service (201 once it answers)", ModelLoaded,
                   body=ModelLoad, status=201, errors=(400, 403, 404, 409, 501, 502, 503, 507),
                   links=(
                       Link("unload", "delete", f"{COMPUTE}/models/{{model_id}}",
                            {"model_id": "model_id"}),
                       Link("model", "get", f"{CONTROL}/models/{{name}}", {"name": "model_id"}),
                       Link("service", "get", f"{CONTROL}/services/{{service_id}}",
                            {"service_id": "service_id"}),
                   )),
    }),
    _route("/models/{model_id}", ModelHandler, {
        "delete": Op("Unload: stop its services (the registry entry stays)", ModelUnloaded,
                     errors=(404, 409)),
    }),
    _route("/inference", InferenceHandler, {
        "post": Op("Inference: float rows -> rows, or token rows -> generated tokens",
                   InferenceResult, body=InferenceRequest, errors=(400, 404, 503, 504)),
    }),
    _route("/inference/async", AsyncInferenceHandler, {
        "post": Op("Queue an inference (a task)", AsyncAccepted, body=AsyncInferenceRequest,
                   status=202, errors=(400, 404),
                   links=(*resource_links(f"{COMPUTE}/inference/{{request_id}}", "request_id",
                                          "request_id", delete=False), *task_links())),
    }),
    _route("/inference/batch", BatchInferenceHandler, {
        "post": Op("Several inferences; each succeeds or fails on its own", BatchResults,
                   body=BatchInference, errors=(400,)),
    }),
    _route("/inference/{request_id}", InferenceStatusHandler, {
        "get": Op("An async inference's status and output", AsyncStatus, errors=(404,)),
    }),
    _route("/sessions", SessionsHandler, {
        "post": Op("Open a session: pins the model, stays on one replica, expires after "
                   "ttl_seconds", SessionRecord, body=SessionCreate, status=201, errors=(400, 404),
                   links=(Link("end", "delete", f"{COMPUTE}/sessions/{{session_id}}",
                               {"session_id": "session_id"}),)),
    }),
    _route("/sessions/{session_id}", SessionHandler, {
        "delete": Op("End a session", SessionRecord, errors=(404,)),
    }),
    _route("/metrics", MetricsHandler, {
        "get": Op("Measured throughput, latency, request counters, device memory", ComputeMetrics),
    }),
    _route("/metrics/history", MetricsHistoryHandler, {
        "get": Op("Request counters in buckets of `interval` seconds", MetricsHistory,
                  query=HistoryQuery, errors=(400,)),
    }),
]
