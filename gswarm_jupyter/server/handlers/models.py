"""Model registry and placement routes and the `/ws/models` stream: thin adapters over
`ModelStore` and `ModelSources`."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

from ...cluster.storage.modelstore import ModelStore
from ...cluster.storage.registration import ModelSources
from ...core.models_api import (
    CopyDropped,
    CopyRequest,
    DownloadRequest,
    ForceQuery,
    LocationCreate,
    LocationList,
    ModelCreate,
    ModelDeleteQuery,
    ModelList,
    ModelOrCopyDeleted,
    ModelQuery,
    ModelRecord,
    ModelTask,
    MoveRequest,
    NodeModelList,
)
from ...core.tasks import Task
from ..base import GswarmHandler
from ..routes import CONTROL, Op, Route, resource_links, task_links
from ..websocket import GswarmSocket, socket_op


class ModelHandlerBase(GswarmHandler):
    auth_resource = "gswarm:models"

    @property
    def models(self) -> ModelStore:
        return self.gswarm.models  # type: ignore[return-value]

    @property
    def sources(self) -> ModelSources:
        return self.gswarm.model_sources  # type: ignore[return-value]

    def reply_task(self, task: Task) -> None:
        """`202` with the task record, its place in the queue and an estimate where one exists."""
        queue = self.gswarm.tasks.queue
        record = task.record()
        record["position"] = queue.position(task.task_id) if task.task_id in queue else None
        limit = task.params.get("bandwidth_limit")
        name = task.params.get("model_name")
        size = self.models.registry.row(name)["size"] if name and limit else None
        record["estimated_time"] = round(size / limit, 3) if size and limit else None
        self.reply(record, 202)


class ModelsHandler(ModelHandlerBase):
    def get(self) -> None:
        self.reply(self.models.list(self.query(ModelQuery)))

    async def post(self) -> None:
        record = await self.sources.register(self.body(ModelCreate))
        location = f"{self.base_url.rstrip('/')}{CONTROL}/models/{quote(record['model_name'])}"
        self.reply(record, 201, {"Location": location})


class ModelHandler(ModelHandlerBase):
    def get(self, name: str) -> None:
        self.reply(self.models.record(unquote(name)))

    async def delete(self, name: str) -> None:
        q = self.query(ModelDeleteQuery)
        if q.device is not None:
            self.reply(await self.models.drop_copy(unquote(name), q.device, force=q.force))
        else:
            self.reply(await self.models.delete(unquote(name), force=q.force))


class LocationsHandler(ModelHandlerBase):
    def get(self, name: str) -> None:
        self.reply(self.models.locations(unquote(name)))

    async def post(self, name: str) -> None:
        self.reply_task(await self.models.add_location(unquote(name), self.body(LocationCreate)))


class LocationHandler(ModelHandlerBase):
    async def delete(self, name: str, device: str) -> None:
        q = self.query(ForceQuery)
        self.reply(await self.models.drop_copy(unquote(name), unquote(device), force=q.force))


class DownloadHandler(ModelHandlerBase):
    async def post(self, name: str) -> None:
        self.reply_task(await self.sources.download(unquote(name), self.body(DownloadRequest)))


class MoveHandler(ModelHandlerBase):
    async def post(self, name: str) -> None:
        self.reply_task(await self.models.move(unquote(name), self.body(MoveRequest)))


class CopyHandler(ModelHandlerBase):
    async def post(self, name: str) -> None:
        self.reply_task(await self.models.copy(unquote(name), self.body(CopyRequest)))


class NodeModelsHandler(ModelHandlerBase):
    def get(self, node: str) -> None:
        self.reply(self.models.node_models(node))


class ModelsSocket(GswarmSocket):
    """Registry and location changes as `{"event": "model", "data": {"model_name", "change",
    ...}}`; `change` is registered, location_added, location_removed, updated or deleted."""

    auth_resource = "gswarm:models"

    def open(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().open(*args, **kwargs)
        self.gswarm.models.listeners.add(self._on_change)

    def on_close(self) -> None:
        self.gswarm.models.listeners.discard(self._on_change)

    def _on_change(self, event: dict[str, Any]) -> None:
        if not self.send_event("model", event):
            self.on_close()


_TASK_ERRORS = (400, 404, 409, 503, 507)
MODEL_LINKS = resource_links(f"{CONTROL}/models/{{name}}", "name", "model_name", ("locations",))

routes = [
    Route(
        f"{CONTROL}/models",
        ModelsHandler,
        {
            "get": Op("Models, filtered by type, location and status", ModelList,
                      query=ModelQuery, errors=(400,)),
            "post": Op("Register a model (builtin://, file:// under the model roots, http(s)://)",
                       ModelRecord, body=ModelCreate, status=201,
                       errors=(400, 403, 404, 409, 503, 507), links=MODEL_LINKS),
        },
        tag="models",
    ),
    Route(
        f"{CONTROL}/models/{{name}}",
        ModelHandler,
        {
            "get": Op("One model with its locations and services", ModelRecord, errors=(404,)),
            "delete": Op("Remove the model and every copy, or with ?device= one copy "
                         "(409 while in use unless force; the last copy never)", ModelOrCopyDeleted,
                         query=ModelDeleteQuery, errors=(400, 404, 409)),
        },
        tag="models",
    ),
    Route(
        f"{CONTROL}/models/{{name}}/locations",
        LocationsHandler,
        {
            "get": Op("Where the model's copies are", LocationList, errors=(404,)),
            "post": Op("Make a copy on a device from the best existing copy (a task)", ModelTask,
                       body=LocationCreate, status=202, errors=_TASK_ERRORS,
                       links=task_links()),
        },
        tag="models",
    ),
    Route(
        f"{CONTROL}/models/{{name}}/locations/{{device}}",
        LocationHandler,
        {"delete": Op("Drop one copy (never the last; in use only with force)", CopyDropped,
                      query=ForceQuery, errors=(400, 404, 409))},
        tag="models",
    ),
    Route(
        f"{CONTROL}/models/{{name}}/download",
        DownloadHandler,
        {"post": Op("Download the model's source to a device (a task)", ModelTask,
                    body=DownloadRequest, status=202, errors=(*_TASK_ERRORS, 403),
                    links=task_links())},
        tag="models",
    ),
    Route(
        f"{CONTROL}/models/{{name}}/move",
        MoveHandler,
        {"post": Op("Move a copy to another device or node (a task; the source goes once the "
                    "target is complete)", ModelTask, body=MoveRequest, status=202,
                    errors=_TASK_ERRORS, links=task_links())},
        tag="models",
    ),
    Route(
        f"{CONTROL}/models/{{name}}/copy",
        CopyHandler,
        {"post": Op("Copy to another device or node, worker to worker (a task)", ModelTask,
                    body=CopyRequest, status=202, errors=_TASK_ERRORS, links=task_links())},
        tag="models",
    ),
    Route(
        f"{CONTROL}/nodes/{{node}}/models",
        NodeModelsHandler,
        {"get": Op("The models with a copy on a node, with device and status", NodeModelList,
                   errors=(404,))},
        tag="nodes",
    ),
    Route(
        f"{CONTROL}/ws/models",
        ModelsSocket,
        {"get": socket_op("WebSocket: {event: model, data: {model_name, change, ...}} on every "
                          "registry or location change")},
        tag="models",
    ),
]
