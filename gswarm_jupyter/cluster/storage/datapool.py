"""The data pool: chunk metadata in SQLite, bytes on the nodes, moves and transfers as tasks.

Bytes never pass through the server on a move or transfer: the target worker's `put_chunk` takes
the source worker's `get_chunk` future, so Dask carries the bytes worker to worker. They pass
through the server only where it is their end (an upload in `POST /data`, a `content` read).

An uploaded chunk is recorded with its first copy, in one transaction, once the bytes are stored:
an upload cut short leaves no chunk without bytes.

The rules of copies (the last one never removed but with its chunk, copies being written
forgotten with their task, memory copies of gone workers lost) are the copy engine's
(`storage/engine.py`); this face adds what is a chunk's own: uploads, URLs, reads, references.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ...core.chunks import ChunkRegistry, check_layout, new_chunk_id
from ...core.data_api import ChunkCreate, ChunkMove, ChunkQuery, ChunkTransfer
from ...core.db import loads
from ...core.errors import (
    Conflict,
    GswarmError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
)
from ...core.fetchpolicy import FetchPolicy
from ...core.locations import is_memory_device
from ...core.names import DeviceRef
from ...core.nodes import NodeChange
from ...core.pagination import paginate
from ...core.placement import read_cost
from ...core.sources import file_path, resolve_under_roots
from ...core.tasks import Task
from ..runtime.cluster import ClusterRuntime
from ..runtime.executor import Job, TaskExecutor
from ..runtime.signals import TaskSignal, WorkerOpError, api_error
from .chunkstore import drop_chunk, fetch_chunk, get_chunk, put_chunk
from .engine import CopyEngine, Payload
from .httpfetch import Room, precheck

log = logging.getLogger(__name__)
TASK_TYPES = ("download", "move", "transfer")
CHUNKS = Payload("chunk", "chunk_id", "available", frozenset({"copying", "downloading"}),
                 TASK_TYPES, "chunks", get_chunk, drop_chunk)
_URL = re.compile(r"^(https?|file)://", re.IGNORECASE)


class DataPool:
    def __init__(
        self,
        registry: ChunkRegistry,
        runtime: ClusterRuntime,
        executor: TaskExecutor,
        model_roots: list[str],
        max_chunk_bytes: int = 2**30,
        fetch_policy: FetchPolicy | None = None,
    ) -> None:
        self.registry = registry
        self.runtime = runtime
        self.executor = executor
        self.model_roots = [Path(r).expanduser().resolve() for r in model_roots]
        self.max_chunk_bytes = max_chunk_bytes
        self.fetch_policy = fetch_policy or FetchPolicy()  # where http(s) urls may be fetched
        self._held: Counter[str] = Counter()
        self.engine = CopyEngine(CHUNKS, registry.copies, registry.exists, runtime, executor)
        self.copies = registry.copies
        executor.register("download", self._run_download)
        executor.register("move", self._run_copy)
        executor.register("transfer", self._run_copy)
        executor.queue.listeners.append(self._on_task)

    def start(self) -> None:
        """After the queue restored its tasks: drop copies in progress of tasks no longer running
        (a download's chunk keeps the reason)."""
        for loc, task in self.engine.recover():
            if loc["status"] == "downloading":
                self.registry.set_error(
                    loc["chunk_id"],
                    task.error if task is not None else {"code": "TASK_FAILED",
                                                         "message": "interrupted"},
                )
        self.runtime.listeners.append(self._on_node)

    def _on_node(self, change: NodeChange) -> None:
        """Memory copies are checked at every node change, not at the next read only: a worker
        dropped and back under its old address would otherwise pass for the one that held them."""
        self.reconcile()

    def _on_task(self, task: Task) -> None:
        """A data task that ended without completing leaves no copy-in-progress behind
        (also for tasks that never ran: cancelled while pending, failed dependency)."""
        chunk_id = self.engine.forget_unfinished(task)
        if chunk_id is not None and task.task_type == "download":
            self.registry.set_error(
                chunk_id, task.error
                or {"code": "TASK_FAILED", "message": "the download was cancelled",
                    "details": {"reason": "cancelled"}}
            )

    # -- reading ------------------------------------------------------------------------------

    def record(self, chunk_id: str) -> dict[str, Any]:
        self.reconcile()
        return self.registry.record(chunk_id, self.references(chunk_id))

    def list(self, query: ChunkQuery) -> dict[str, Any]:
        self.reconcile()
        records = [self.registry.record(c, self.references(c)) for c in self.registry.ids()]
        if query.type is not None:
            records = [r for r in records if r["chunk_type"] == query.type]
        if query.node is not None:
            records = [
                r for r in records if any(_node_of(loc) == query.node for loc in r["locations"])
            ]
        if query.device is not None:
            want = query.device
            records = [
                r
                for r in records
                if any(
                    loc["device"] == want or loc["device"].rpartition(":")[2] == want
                    for loc in r["locations"]
                )
            ]
        return paginate(records, query, "chunks")

    def references(self, chunk_id: str) -> int:
        """Running tasks that use the chunk, plus holds (service requests reading it)."""
        running = sum(
            1 for t in self.executor.queue.running() if chunk_id in t.resources.get("chunks", [])
        )
        return running + self._held[chunk_id]

    @contextlib.contextmanager
    def hold(self, chunk_id: str) -> Iterator[None]:
        """Keep the chunk referenced (not deletable without `force`) while the block runs."""
        self.registry.row(chunk_id)
        self._held[chunk_id] += 1
        try:
            yield
        finally:
            self._held[chunk_id] -= 1

    async def content(self, chunk_id: str) -> tuple[bytes, str]:
        """The chunk's bytes (from its cheapest available copy) and its format; counts a read."""
        row = self.registry.row(chunk_id)
        self.reconcile()
        last: GswarmError | None = None
        for loc in self._sources(chunk_id):
            node, device = loc["node"], loc["device"]
            try:
                address = self.runtime.nodes.online_node(node).address
            except GswarmError as exc:
                last = exc
                continue
            client = self.runtime.require_client()
            future = client.submit(
                get_chunk, chunk_id, device, workers=[address], allow_other_workers=False,
                pure=False,
            )
            try:
                array = await future
            except WorkerOpError as exc:
                if exc.code == "NOT_FOUND" and is_memory_device(device):
                    self.copies.set_status(chunk_id, node, device, "lost")
                last = NotFound(exc.message)
                continue
            finally:
                future.release()
            self.registry.count_access(chunk_id)
            return await asyncio.to_thread(bytes, array.data), row["format"]  # up to a GiB
        if last is not None and not isinstance(last, NotFound):
            raise last
        raise Conflict(
            f"chunk {chunk_id} has no available copy",
            {"chunk_id": chunk_id, "locations": self.registry.record(chunk_id)["locations"]},
        )

    # -- writing ------------------------------------------------------------------------------

    async def put(self, req: ChunkCreate, created_by: str | None) -> dict[str, Any]:
        """Store a new chunk; a URL download answers at once with the download task's id."""
        ref = self._device(req.device, "device")
        node = self.runtime.nodes.online_node(ref.node)
        if req.url is None and req.data is not None and _URL.match(req.data):
            # API.md: `data` is base64 or a url (base64 has no ':', so this cannot misread bytes)
            req = req.model_copy(update={"url": req.data, "data": None})
        if (req.data is None) == (req.url is None):
            raise InvalidRequest("give exactly one of data (base64) or url", {"field": "data"})
        unknown = [d for d in req.dependencies if d not in self.executor.queue]
        if unknown:
            raise InvalidRequest(
                f"unknown dependency task(s): {', '.join(unknown)}",
                {"field": "dependencies", "unknown": unknown},
            )
        shape, dtype = req.metadata.shape, req.metadata.dtype
        layout = (shape, dtype) if req.format == "tensor" else None
        check_layout(req.format, None, shape, dtype, max_bytes=self.max_chunk_bytes)
        if req.url is not None:
            scheme = urlparse(req.url).scheme
            if scheme in ("http", "https"):
                # A url the policy denies is refused now, before any chunk exists.
                await asyncio.to_thread(precheck, req.url, self.fetch_policy)
                return self._download(req, ref, created_by)
            if scheme != "file":
                raise InvalidRequest(
                    f"unsupported url scheme {scheme!r}: use http, https or file", {"field": "url"}
                )
            data = await asyncio.to_thread(self._read_file, req.url, req)
        else:
            encoded = req.data or ""
            self._check_chunk_size(decoded_size(encoded), "data")
            data = await asyncio.to_thread(self._decode, encoded, req)
        self.engine.check_room(ref, len(data))

        chunk_id = new_chunk_id()
        client = self.runtime.require_client()
        [scattered] = await client.scatter([data], workers=[node.address], hash=False)
        future = client.submit(
            put_chunk, chunk_id, ref.device, scattered, TaskSignal(f"put-{chunk_id}"), layout,
            workers=[node.address], allow_other_workers=False, pure=False,
        )
        try:
            stored = await future
        except WorkerOpError as exc:
            raise api_error(exc) from None
        finally:
            future.release()
            scattered.release()
        # The chunk comes with its copy, in one transaction: an upload cut short (a failure, a
        # killed server) never leaves a chunk without bytes.
        try:
            with self.registry.db.transaction():
                self.registry.create(
                    chunk_id, chunk_type=req.type, fmt=req.format, size=len(data), shape=shape,
                    dtype=dtype, created_by=created_by,
                )
                self.copies.put(chunk_id, ref.node, ref.device, "available",
                                worker=stored["worker"])
        except BaseException:
            await self.engine.drop_quietly(chunk_id, ref.node, ref.device)
            raise
        return self.record(chunk_id)

    def move(self, chunk_id: str, req: ChunkMove) -> Task:
        """Queue a move to another device of the same node (the source copy goes once the
        target is complete)."""
        row = self.registry.row(chunk_id)
        target = self._device(req.target_device, "target_device")
        self.runtime.nodes.online_node(target.node)
        sources = [s for s in self._candidates(chunk_id) if s["node"] == target.node]
        if not sources:
            raise Conflict(
                f"chunk {chunk_id} has no copy on {target.node} to move (use transfer)",
                {"chunk_id": chunk_id, "node": target.node},
            )
        self._check_free_target(chunk_id, target)
        self.engine.check_room(target, row["size"])
        source = sources[0]
        return self._submit_copy("move", chunk_id, source, target, True, req.bandwidth_limit,
                                 req.priority, req.dependencies)

    def transfer(self, chunk_id: str, req: ChunkTransfer) -> Task:
        """Queue a copy to another node (keeping the source unless `delete_source`)."""
        row = self.registry.row(chunk_id)
        node_name, sep, device = req.target_device.rpartition(":")
        if sep and node_name != req.target_node:
            raise InvalidRequest(
                f"target_device {req.target_device!r} is not on target_node {req.target_node!r}",
                {"field": "target_device"},
            )
        target = self._device(f"{req.target_node}:{device}", "target_device")
        self.runtime.nodes.online_node(target.node)
        sources = [s for s in self._candidates(chunk_id) if s["node"] != target.node]
        if not sources:
            raise Conflict(
                f"chunk {chunk_id} has no copy on another node than {target.node} "
                "(use move within a node)",
                {"chunk_id": chunk_id, "node": target.node},
            )
        self._check_free_target(chunk_id, target)
        self.engine.check_room(target, row["size"])
        return self._submit_copy("transfer", chunk_id, sources[0], target, req.delete_source,
                                 req.bandwidth_limit, req.priority, req.dependencies)

    async def delete(self, chunk_id: str, force: bool = False) -> dict[str, Any]:
        """Drop every copy and the metadata; `Conflict` while referenced unless `force`
        (which cancels the tasks using the chunk first)."""
        async with self.engine.locks(chunk_id):
            return await self._delete(chunk_id, force)

    async def _delete(self, chunk_id: str, force: bool) -> dict[str, Any]:
        self.registry.row(chunk_id)
        refs = self.references(chunk_id)
        if refs and not force:
            raise Conflict(
                f"chunk {chunk_id} is in use ({refs} reference(s)); delete with force=true",
                {"chunk_id": chunk_id, "references": refs},
            )
        await self.engine.cancel(self.engine.tasks_using(chunk_id))
        removed = await self.engine.drop_all(chunk_id)
        self.registry.delete(chunk_id)
        return {"chunk_id": chunk_id, "deleted": True, "locations_removed": removed}

    def reconcile(self) -> None:
        """Memory copies of a worker that is gone are lost."""
        self.engine.reconcile()

    # -- task runners -------------------------------------------------------------------------

    async def _run_download(self, job: Job) -> dict[str, Any]:
        p = job.params
        chunk_id, node, device = p["chunk_id"], p["node"], p["device"]
        layout = tuple(p["layout"]) if p.get("layout") else None
        free = self.runtime.nodes.get(node).devices.get(device, {}).get("available")
        room = Room(None if free is None else int(free), f"{node}:{device}",
                    limit=self.max_chunk_bytes)
        try:
            stored = await self.engine.run_write(
                job, chunk_id, DeviceRef(node, device), fetch_chunk, chunk_id, device, p["url"],
                job.signal, layout, room, self.fetch_policy)
        except GswarmError as exc:
            with contextlib.suppress(sqlite3.Error):
                self.registry.set_error(chunk_id, exc.to_dict())
            raise
        if stored is None:
            return {"chunk_id": chunk_id, "deleted": True}
        self.registry.set_size(chunk_id, stored["size"])
        self.copies.put(chunk_id, node, device, "available", worker=stored["worker"],
                        task_id=job.task.task_id)
        return {"chunk_id": chunk_id, "device": f"{node}:{device}", "size": stored["size"]}

    async def _run_copy(self, job: Job) -> dict[str, Any]:
        p = job.params
        chunk_id = p["chunk_id"]
        target = DeviceRef(p["target_node"], p["target_device"])
        self.registry.row(chunk_id)
        source = self._run_source(job)
        if self.copies.get(chunk_id, target.node, target.device) is not None:
            raise Conflict(f"chunk {chunk_id} already has a copy on {target}")
        row = self.registry.row(chunk_id)
        layout = (loads(row["shape"]), row["dtype"]) if row["format"] == "tensor" else None
        deleted = bool(p.get("delete_source"))
        stored = await self.engine.run_copy(job, chunk_id, source, target, put_chunk, layout,
                                            p.get("bandwidth_limit"), keep_source=not deleted)
        if stored is None:
            return {"chunk_id": chunk_id, "deleted": True}
        return {
            "chunk_id": chunk_id,
            "source": str(source),
            "target": str(target),
            "size": stored["size"],
            "source_deleted": deleted,
        }

    # -- inside -------------------------------------------------------------------------------

    def _download(self, req: ChunkCreate, ref: DeviceRef, created_by: str | None) -> dict[str, Any]:
        chunk_id = new_chunk_id()
        shape, dtype = req.metadata.shape, req.metadata.dtype
        layout = [shape, dtype] if req.format == "tensor" else None
        self.registry.create(chunk_id, chunk_type=req.type, fmt=req.format, size=None,
                             shape=shape, dtype=dtype, created_by=created_by)
        try:
            task = self.executor.submit(
                "download",
                chunk_id,
                priority=req.priority,
                dependencies=req.dependencies,
                resources={"devices": [str(ref)], "chunks": [chunk_id]},
                params={"chunk_id": chunk_id, "node": ref.node, "device": ref.device,
                        "url": req.url, "layout": layout},
                locks=[chunk_id],
            )
        except BaseException:
            self.registry.delete(chunk_id)
            raise
        self.registry.set_task(chunk_id, task.task_id)
        if not task.finished:
            self.copies.put(chunk_id, ref.node, ref.device, "downloading",
                            task_id=task.task_id)
        if task.error is not None:
            self.registry.set_error(chunk_id, task.error)
        return self.record(chunk_id)

    def _submit_copy(
        self,
        kind: str,
        chunk_id: str,
        source: Any,
        target: DeviceRef,
        delete_source: bool,
        bandwidth_limit: int | None,
        priority: str,
        dependencies: list[str],
    ) -> Task:
        src = f"{source['node']}:{source['device']}"
        return self.executor.submit(
            kind,
            chunk_id,
            priority=priority,
            dependencies=dependencies,
            resources={"devices": [src, str(target)], "chunks": [chunk_id]},
            params={
                "chunk_id": chunk_id,
                "source": src,
                "target_node": target.node,
                "target_device": target.device,
                "delete_source": delete_source,
                "bandwidth_limit": bandwidth_limit,
            },
            locks=[chunk_id],
        )

    def _run_source(self, job: Job) -> DeviceRef:
        """The copy a queued move (same node) or transfer (another node) reads: the one chosen at
        submit if it is still available, else another available copy that qualifies."""
        p = job.params
        self.reconcile()
        same_node = job.task.task_type == "move"
        available = [
            loc
            for loc in self._sources(p["chunk_id"])
            if (loc["node"] == p["target_node"]) == same_node
            and (loc["node"], loc["device"]) != (p["target_node"], p["target_device"])
        ]
        chosen = next(
            (loc for loc in available if f"{loc['node']}:{loc['device']}" == p.get("source")),
            available[0] if available else None,
        )
        if chosen is None:
            raise Conflict(
                f"chunk {p['chunk_id']} has no available copy to read from",
                {"chunk_id": p["chunk_id"]},
            )
        return DeviceRef(chosen["node"], chosen["device"])

    def _candidates(self, chunk_id: str) -> list[sqlite3.Row]:
        """Copies a task may read once it runs: available or still being written (a dependency
        may be writing it), cheapest first."""
        self.reconcile()
        rows = [r for r in self.copies.of(chunk_id) if r["status"] != "lost"]
        return sorted(rows, key=lambda r: (r["status"] != "available", read_cost(r["device"])))

    def _sources(self, chunk_id: str) -> list[sqlite3.Row]:
        rows = self.engine.ready_copies(chunk_id)
        return sorted(rows, key=lambda r: read_cost(r["device"]))

    def _check_free_target(self, chunk_id: str, target: DeviceRef) -> None:
        self.engine.check_free_target(chunk_id, target)
        for task in self.executor.queue.tasks():
            p = task.params
            if (
                not task.finished
                and p.get("chunk_id") == chunk_id
                and (p.get("target_node"), p.get("target_device")) == (target.node, target.device)
            ):
                raise Conflict(
                    f"task {task.task_id} is already copying chunk {chunk_id} to {target}",
                    {"chunk_id": chunk_id, "task_id": task.task_id},
                )

    def _device(self, text: str, field: str) -> DeviceRef:
        return self.engine.device(text, field)

    def _check_chunk_size(self, size: int, field: str) -> None:
        if size > self.max_chunk_bytes:
            raise PayloadTooLarge(
                f"the chunk is {size} bytes; the limit is {self.max_chunk_bytes} bytes "
                "(GswarmApp.max_chunk_bytes)",
                limit=self.max_chunk_bytes, size=size, field=field,
            )

    def _read_file(self, url: str, req: ChunkCreate) -> bytes:
        """In a thread: the bytes of a file under the roots (its size checked before they are
        read), their layout checked."""
        path = resolve_under_roots(file_path(url, "url"), self.model_roots, "url")
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            self._check_chunk_size(size, "url")
            data = f.read(size + 1)
            if len(data) > size:  # it grew since: read on, up to one byte past the limit
                data += f.read(self.max_chunk_bytes + 1 - len(data))
                self._check_chunk_size(len(data), "url")
        check_layout(req.format, len(data), req.metadata.shape, req.metadata.dtype, data)
        return data

    @staticmethod
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


def _node_of(location: dict[str, Any]) -> str:
    return str(location["device"]).rpartition(":")[0]
