"""Data pool routes: thin adapters over `DataPool` and `ChunkUploads`."""

from __future__ import annotations

from ...core.data_api import (
    ChunkCreate,
    ChunkDeleted,
    ChunkList,
    ChunkMove,
    ChunkQuery,
    ChunkRecord,
    ChunkTransfer,
    DeleteQuery,
)
from ...core.queue_api import TaskRecord
from ..base import GswarmHandler
from ..routes import CONTROL, Op, Route, resource_links, task_links


class ChunksHandler(GswarmHandler):
    auth_resource = "gswarm:data"

    def get(self) -> None:
        self.reply(self.gswarm.data.list(self.query(ChunkQuery)))

    async def post(self) -> None:
        req = self.body(ChunkCreate)
        user = self.current_user
        record = await self.gswarm.uploads.put(req, getattr(user, "username", None))
        self.reply(record, 201, {"Location": self._location(record["chunk_id"])})

    def _location(self, chunk_id: str) -> str:
        return f"{self.base_url.rstrip('/')}{CONTROL}/data/{chunk_id}"


class ChunkHandler(GswarmHandler):
    auth_resource = "gswarm:data"

    def get(self, chunk_id: str) -> None:
        self.reply(self.gswarm.data.record(chunk_id))

    async def delete(self, chunk_id: str) -> None:
        q = self.query(DeleteQuery)
        self.reply(await self.gswarm.data.delete(chunk_id, force=q.force))


class ContentHandler(GswarmHandler):
    auth_resource = "gswarm:data"

    async def get(self, chunk_id: str) -> None:
        data, fmt = await self.gswarm.data.content(chunk_id)
        kind = "application/json" if fmt == "json" else "application/octet-stream"
        self.finish(data, set_content_type=kind)


class MoveHandler(GswarmHandler):
    auth_resource = "gswarm:data"

    def post(self, chunk_id: str) -> None:
        task = self.gswarm.data.move(chunk_id, self.body(ChunkMove))
        self.reply(task.record(), 202)


class TransferHandler(GswarmHandler):
    auth_resource = "gswarm:data"

    def post(self, chunk_id: str) -> None:
        task = self.gswarm.data.transfer(chunk_id, self.body(ChunkTransfer))
        self.reply(task.record(), 202)


routes = [
    Route(
        f"{CONTROL}/data",
        ChunksHandler,
        {
            "get": Op("Chunks, filtered by device, type, node", ChunkList, query=ChunkQuery,
                      errors=(400,)),
            "post": Op("Store a chunk (base64 data, or a url fetched by a task)", ChunkRecord,
                       body=ChunkCreate, status=201, errors=(400, 403, 404, 503, 507),
                       links=resource_links(f"{CONTROL}/data/{{chunk_id}}", "chunk_id",
                                            "chunk_id", ("content",))),
        },
        tag="data",
    ),
    Route(
        f"{CONTROL}/data/{{chunk_id}}",
        ChunkHandler,
        {
            "get": Op("One chunk with its locations", ChunkRecord, errors=(404,)),
            "delete": Op("Drop every copy of a chunk (409 while referenced unless force)",
                         ChunkDeleted, query=DeleteQuery, errors=(404, 409)),
        },
        tag="data",
    ),
    Route(
        f"{CONTROL}/data/{{chunk_id}}/content",
        ContentHandler,
        {"get": Op("The chunk's bytes (raw, no envelope)", content_type="application/octet-stream",
                   enveloped=False, errors=(404, 409, 503))},
        tag="data",
    ),
    Route(
        f"{CONTROL}/data/{{chunk_id}}/move",
        MoveHandler,
        {"post": Op("Move to another device of the same node (a task)", TaskRecord,
                    body=ChunkMove, status=202, errors=(400, 404, 409, 507),
                    links=task_links())},
        tag="data",
    ),
    Route(
        f"{CONTROL}/data/{{chunk_id}}/transfer",
        TransferHandler,
        {"post": Op("Copy to another node, worker to worker (a task)", TaskRecord,
                    body=ChunkTransfer, status=202, errors=(400, 404, 409, 507),
                    links=task_links())},
        tag="data",
    ),
]


