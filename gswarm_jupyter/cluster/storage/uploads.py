"""New chunks: `POST /data` parsed and stored (base64 bytes, a file under the roots, or a URL
downloaded by a task).

An uploaded chunk is recorded with its first copy, in one transaction, once the bytes are
stored: an upload cut short leaves no chunk without bytes. No upload is decoded or read before
its size is known to fit the pool's `max_chunk_bytes`; a URL the fetch policy denies is refused
before any chunk exists.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import os
import re
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ...core.chunks import check_layout, new_chunk_id
from ...core.data_api import ChunkCreate
from ...core.errors import GswarmError, InvalidRequest, PayloadTooLarge
from ...core.fetchpolicy import FetchPolicy
from ...core.names import DeviceRef
from ...core.redact import redact_url
from ...core.sources import file_path, resolve_under_roots
from ..runtime.executor import Job
from ..runtime.signals import TaskSignal
from .chunkstore import Layout, fetch_chunk, put_chunk
from .datapool import DataPool
from .httpfetch import Room, precheck

_URL = re.compile(r"^(https?|file)://", re.IGNORECASE)


class ChunkUploads:
    """Uploads into `pool` (runs its `download` tasks)."""

    def __init__(self, pool: DataPool, model_roots: list[str],
                 fetch_policy: FetchPolicy | None = None) -> None:
        self.pool = pool
        self.model_roots = [Path(r).expanduser().resolve() for r in model_roots]
        self.fetch_policy = fetch_policy or FetchPolicy()  # where http(s) urls may be fetched
        pool.executor.register("download", self._run_download)

    async def put(self, req: ChunkCreate, created_by: str | None) -> dict[str, Any]:
        """Store a new chunk; a URL download answers at once with the download task's id."""
        pool = self.pool
        ref = pool.engine.device(req.device, "device")
        node = pool.runtime.nodes.online_node(ref.node)
        req = _one_source(req)
        unknown = [d for d in req.dependencies if d not in pool.executor.queue]
        if unknown:
            raise InvalidRequest(
                f"unknown dependency task(s): {', '.join(unknown)}",
                {"field": "dependencies", "unknown": unknown},
            )
        shape, dtype = req.metadata.shape, req.metadata.dtype
        layout: Layout | None = (shape, dtype) if req.format == "tensor" else None
        check_layout(req.format, None, shape, dtype, max_bytes=pool.max_chunk_bytes)
        if req.url is not None and urlparse(req.url).scheme in ("http", "https"):
            # A url the policy denies is refused now, before any chunk exists.
            await asyncio.to_thread(precheck, req.url, self.fetch_policy)
            return self._download(req, ref, created_by)
        data = await self._payload(req)
        pool.engine.check_room(ref, len(data), owner=created_by)

        chunk_id = new_chunk_id()
        client = pool.runtime.require_client()
        [scattered] = await pool.runtime.watch_on(
            ref.node, node.address, client.scatter([data], workers=[node.address], hash=False),
            "the upload",
        )
        try:
            stored = await pool.runtime.run_on(
                ref.node, put_chunk, chunk_id, ref.device, scattered,
                TaskSignal(f"put-{chunk_id}"), layout,
            )
        finally:
            scattered.release()
        # The chunk comes with its copy, in one transaction: an upload cut short (a failure, a
        # killed server) never leaves a chunk without bytes.
        try:
            with pool.registry.db.transaction():
                pool.registry.create(
                    chunk_id, chunk_type=req.type, fmt=req.format, size=len(data), shape=shape,
                    dtype=dtype, created_by=created_by,
                )
                pool.copies.put(chunk_id, ref.node, ref.device, "available",
                                worker=stored["worker"])
        except BaseException:
            await pool.engine.drop_quietly(chunk_id, ref.node, ref.device)
            raise
        return pool.record(chunk_id)

    # -- the bytes in the request -------------------------------------------------------------

    async def _payload(self, req: ChunkCreate) -> bytes:
        """The upload's bytes (a file:// url read, or base64 `data` decoded), in a thread."""
        if req.url is not None:
            scheme = urlparse(req.url).scheme
            if scheme != "file":
                raise InvalidRequest(
                    f"unsupported url scheme {scheme!r}: use http, https or file", {"field": "url"}
                )
            return await asyncio.to_thread(self._read_file, req.url, req)
        encoded = req.data or ""
        self._check_size(decoded_size(encoded), "data")
        return await asyncio.to_thread(_decode, encoded, req)

    def _check_size(self, size: int, field: str) -> None:
        """`PayloadTooLarge` if `size` bytes exceed the pool's chunk limit."""
        limit = self.pool.max_chunk_bytes
        if size > limit:
            raise PayloadTooLarge(
                f"the chunk is {size} bytes; the limit is {limit} bytes "
                "(GswarmApp.max_chunk_bytes)",
                limit=limit, size=size, field=field,
            )

    def _read_file(self, url: str, req: ChunkCreate) -> bytes:
        """In a thread: the bytes of a file under the roots (its size checked before they are
        read), their layout checked."""
        path = resolve_under_roots(file_path(url, "url"), self.model_roots, "url")
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            self._check_size(size, "url")
            data = f.read(size + 1)
            if len(data) > size:  # it grew since: read on, up to one byte past the limit
                data += f.read(self.pool.max_chunk_bytes + 1 - len(data))
                self._check_size(len(data), "url")
        check_layout(req.format, len(data), req.metadata.shape, req.metadata.dtype, data)
        return data

    # -- URL downloads ------------------------------------------------------------------------

    def _download(self, req: ChunkCreate, ref: DeviceRef, created_by: str | None) -> dict[str, Any]:
        pool = self.pool
        chunk_id = new_chunk_id()
        shape, dtype = req.metadata.shape, req.metadata.dtype
        layout = [shape, dtype] if req.format == "tensor" else None
        pool.registry.create(chunk_id, chunk_type=req.type, fmt=req.format, size=None,
                             shape=shape, dtype=dtype, created_by=created_by)
        try:
            task = pool.executor.submit(
                "download",
                chunk_id,
                priority=req.priority,
                dependencies=req.dependencies,
                resources={"devices": [str(ref)], "chunks": [chunk_id]},
                # The url as given rides in the payload (dropped when the task finishes); the
                # task's stored params show it without its userinfo.
                params={"chunk_id": chunk_id, "node": ref.node, "device": ref.device,
                        "url": redact_url(req.url), "layout": layout},
                payload={"url": req.url},
                locks=[chunk_id],
            )
        except BaseException:
            pool.registry.delete(chunk_id)
            raise
        pool.registry.set_task(chunk_id, task.task_id)
        if not task.finished:
            pool.copies.put(chunk_id, ref.node, ref.device, "downloading",
                            task_id=task.task_id)
        if task.error is not None:
            pool.registry.set_error(chunk_id, task.error)
        return pool.record(chunk_id)

    async def _run_download(self, job: Job) -> dict[str, Any]:
        pool = self.pool
        p = job.params
        chunk_id, node, device = p["chunk_id"], p["node"], p["device"]
        layout = tuple(p["layout"]) if p.get("layout") else None
        target = DeviceRef(node, device)
        # What the node has free, less what others' allocations hold there (its uploader's own
        # allocation is its room).
        owner = pool.registry.row(chunk_id)["created_by"] if pool.registry.exists(chunk_id) else None
        free = pool.engine.room(chunk_id, target, None, owner=owner)
        room = Room(None if free is None else int(free), f"{node}:{device}",
                    limit=pool.max_chunk_bytes)
        try:
            stored = await pool.engine.run_write(
                job, chunk_id, target, fetch_chunk, chunk_id, device,
                job.payload.get("url", p["url"]),
                job.signal, layout, room, self.fetch_policy)
        except GswarmError as exc:
            with contextlib.suppress(sqlite3.Error):
                pool.registry.set_error(chunk_id, exc.to_dict())
            raise
        if stored is None:
            return {"chunk_id": chunk_id, "deleted": True}
        pool.registry.set_size(chunk_id, stored["size"])
        pool.copies.put(chunk_id, node, device, "available", worker=stored["worker"],
                        task_id=job.task.task_id)
        return {"chunk_id": chunk_id, "device": f"{node}:{device}", "size": stored["size"]}


def _one_source(req: ChunkCreate) -> ChunkCreate:
    """`req` with a url given as `data` moved to `url`; `InvalidRequest` unless exactly one of
    them is given."""
    if req.url is None and req.data is not None and _URL.match(req.data):
        # API.md: `data` is base64 or a url (base64 has no ':', so this cannot misread bytes)
        req = req.model_copy(update={"url": req.data, "data": None})
    if (req.data is None) == (req.url is None):
        raise InvalidRequest("give exactly one of data (base64) or url", {"field": "data"})
    return req


def _decode(encoded: str, req: ChunkCreate) -> bytes:
    """In a thread: base64 `data` decoded, its layout checked."""
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"data is not valid base64: {exc}", {"field": "data"}) from None
    check_layout(req.format, len(data), req.metadata.shape, req.metadata.dtype, data)
    return data


def decoded_size(encoded: str) -> int:
    """The byte count base64 `encoded` decodes to (without decoding it)."""
    tail = encoded[-2:]
    return len(encoded) * 3 // 4 - (len(tail) - len(tail.rstrip("=")))
