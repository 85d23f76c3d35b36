"""The data pool: chunk metadata in SQLite, bytes on the nodes, moves and transfers as tasks.

Bytes never pass through the server on a move or transfer: the target worker's `put_chunk` takes
the source worker's `get_chunk` future, so Dask carries the bytes worker to worker. They pass
through the server only where it is their end (an upload in `POST /data`, a `content` read).

A copy leaves only with its chunk (`delete`, under the chunk's lock, so two deletes at once delete
it once) or as the source of a move or `delete_source` transfer, in the same step (no await between)
that records its target available: a chunk never loses its last copy otherwise.
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

from ...core.chunks import (
    ChunkRegistry,
    check_layout,
    is_memory_device,
    new_chunk_id,
)
from ...core.data_api import ChunkCreate, ChunkMove, ChunkQuery, ChunkTransfer
from ...core.db import loads
from ...core.errors import (
    Conflict,
    GswarmError,
    InsufficientMemory,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    error_from_dict,
)
from ...core.fetchpolicy import FetchPolicy
from ...core.keylocks import KeyedLocks
from ...core.names import DeviceRef, parse_device
from ...core.nodes import Node
from ...core.pagination import paginate
from ...core.sources import file_path, resolve_under_roots
from ...core.tasks import Task
from ..runtime.cluster import ClusterRuntime
from ..runtime.executor import Job, TaskExecutor
from ..runtime.signals import TaskSignal, WorkerOpError
from .chunkstore import drop_chunk, fetch_chunk, get_chunk, put_chunk
from .httpfetch import Room, precheck

log = logging.getLogger(__name__)
_URL = re.compile(r"^(https?|file)://", re.IGNORECASE)

# Which copy to read from when there is a choice: the cheapest to read first.
_SOURCE_PREFERENCE = {"dram": 0, "disk": 2}


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
        self._locks = KeyedLocks()  # one per chunk id
        executor.register("download", self._run_download)
        executor.register("move", self._run_copy)
        executor.register("transfer", self._run_copy)
        executor.queue.listeners.append(self._on_task)

    def start(self) -> None:
        """After the queue restored its tasks: drop copies in progress of tasks no longer running."""
        for loc in self.registry.all_locations():
            if loc["status"] not in ("copying", "downloading"):
                continue
            task_id = loc["task_id"]
            task = self.executor.queue.get(task_id) if task_id in self.executor.queue else None
            if task is None or task.finished:
                self.registry.remove_location(loc["chunk_id"], loc["node"], loc["device"])
                if loc["status"] == "downloading":
                    self.registry.set_error(
                        loc["chunk_id"],
                        task.error if task is not None else {"code": "TASK_FAILED",
                                                             "message": "interrupted"},
                    )

    def _on_task(self, task: Task) -> None:
        """A data task that ended without completing leaves no copy-in-progress behind
        (also for tasks that never ran: cancelled while pending, failed dependency)."""
        if not task.finished or task.status == "completed":
            return
        chunk_id = task.params.get("chunk_id")
        if task.task_type not in ("download", "move", "transfer") or not chunk_id:
            return
        for loc in self.registry.locations(chunk_id):
            if loc["task_id"] == task.task_id and loc["status"] in ("copying", "downloading"):
                self.registry.remove_location(chunk_id, loc["node"], loc["device"])
        if task.task_type == "download" and self.registry.exists(chunk_id):
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
                    self.registry.set_location_status(chunk_id, node, device, "lost")
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
        self._check_room(node, ref, len(data))

        chunk_id = new_chunk_id()
        self.registry.create(
            chunk_id, chunk_type=req.type, fmt=req.format, size=len(data), shape=shape,
            dtype=dtype, created_by=created_by,
        )
        try:
            client = self.runtime.require_client()
            [scattered] = await client.scatter([data], workers=[node.address], hash=False)
            future = client.submit(
                put_chunk, chunk_id, ref.device, scattered, TaskSignal(f"put-{chunk_id}"), layout,
                workers=[node.address], allow_other_workers=False, pure=False,
            )
            try:
                stored = await future
            finally:
                future.release()
                scattered.release()
        except BaseException as exc:
            self.registry.delete(chunk_id)
            if isinstance(exc, WorkerOpError):
                raise _rebuild(exc) from None
            raise
        self.registry.put_location(chunk_id, ref.node, ref.device, "available", stored["worker"])
        return self.record(chunk_id)

    def move(self, chunk_id: str, req: ChunkMove) -> Task:
        """Queue a move to another device of the same node (the source copy goes once the
        target is complete)."""
        row = self.registry.row(chunk_id)
        target = self._device(req.target_device, "target_device")
        node = self.runtime.nodes.online_node(target.node)
        sources = [s for s in self._candidates(chunk_id) if s["node"] == target.node]
        if not sources:
            raise Conflict(
                f"chunk {chunk_id} has no copy on {target.node} to move (use transfer)",
                {"chunk_id": chunk_id, "node": target.node},
            )
        self._check_free_target(chunk_id, target)
        self._check_room(node, target, row["size"])
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
        node = self.runtime.nodes.online_node(target.node)
        sources = [s for s in self._candidates(chunk_id) if s["node"] != target.node]
        if not sources:
            raise Conflict(
                f"chunk {chunk_id} has no copy on another node than {target.node} "
                "(use move within a node)",
                {"chunk_id": chunk_id, "node": target.node},
            )
        self._check_free_target(chunk_id, target)
        self._check_room(node, target, row["size"])
        return self._submit_copy("transfer", chunk_id, sources[0], target, req.delete_source,
                                 req.bandwidth_limit, req.priority, req.dependencies)

    async def delete(self, chunk_id: str, force: bool = False) -> dict[str, Any]:
        """Drop every copy and the metadata; `Conflict` while referenced unless `force`
        (which cancels the tasks using the chunk first)."""
        async with self._locks(chunk_id):
            return await self._delete(chunk_id, force)

    async def _delete(self, chunk_id: str, force: bool) -> dict[str, Any]:
        self.registry.row(chunk_id)
        refs = self.references(chunk_id)
        if refs and not force:
            raise Conflict(
                f"chunk {chunk_id} is in use ({refs} reference(s)); delete with force=true",
                {"chunk_id": chunk_id, "references": refs},
            )
        queue = self.executor.queue
        for task in [*queue.tasks("running"), *queue.tasks("pending")]:
            if chunk_id in task.resources.get("chunks", []) and not task.finished:
                with contextlib.suppress(GswarmError):
                    await self.executor.cancel(task.task_id)
        removed = []
        for loc in self.registry.locations(chunk_id):
            removed.append(f"{loc['node']}:{loc['device']}")
            if loc["status"] != "lost":
                await self._drop_quietly(chunk_id, loc["node"], loc["device"])
        self.registry.delete(chunk_id)
        return {"chunk_id": chunk_id, "deleted": True, "locations_removed": removed}

    def reconcile(self) -> None:
        """Memory copies on a worker that restarted (a new address under the same node) are lost."""
        nodes = {n.name: n for n in self.runtime.nodes.all()}
        for loc in self.registry.all_locations():
            node = nodes.get(loc["node"])
            if (
                loc["status"] == "available"
                and is_memory_device(loc["device"])
                and node is not None
                and node.online
                and loc["worker"] is not None
                and node.address != loc["worker"]
            ):
                self.registry.set_location_status(loc["chunk_id"], loc["node"], loc["device"],
                                                  "lost")

    # -- task runners -------------------------------------------------------------------------

    async def _run_download(self, job: Job) -> dict[str, Any]:
        p = job.params
        chunk_id, node, device = p["chunk_id"], p["node"], p["device"]
        layout = tuple(p["layout"]) if p.get("layout") else None
        free = self.runtime.nodes.get(node).devices.get(device, {}).get("available")
        room = Room(None if free is None else int(free), f"{node}:{device}",
                    limit=self.max_chunk_bytes)
        try:
            future = job.submit(fetch_chunk, chunk_id, device, p["url"], job.signal, layout, room,
                                self.fetch_policy, node=node)
            stored = await job.wait(future)
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                self.registry.remove_location(chunk_id, node, device)
                if isinstance(exc, GswarmError):
                    self.registry.set_error(chunk_id, exc.to_dict())
            raise
        if not self.registry.exists(chunk_id):  # deleted with force meanwhile
            await self._drop_quietly(chunk_id, node, device)
            return {"chunk_id": chunk_id, "deleted": True}
        self.registry.set_size(chunk_id, stored["size"])
        self.registry.put_location(
            chunk_id, node, device, "available", stored["worker"], job.task.task_id
        )
        return {"chunk_id": chunk_id, "device": f"{node}:{device}", "size": stored["size"]}

    async def _run_copy(self, job: Job) -> dict[str, Any]:
        p = job.params
        chunk_id = p["chunk_id"]
        target = DeviceRef(p["target_node"], p["target_device"])
        self.registry.row(chunk_id)
        source = self._run_source(job)
        if any(
            (loc["node"], loc["device"]) == (target.node, target.device)
            for loc in self.registry.locations(chunk_id)
        ):
            raise Conflict(f"chunk {chunk_id} already has a copy on {target}")
        row = self.registry.row(chunk_id)
        layout = (loads(row["shape"]), row["dtype"]) if row["format"] == "tensor" else None
        self.registry.put_location(chunk_id, target.node, target.device, "copying",
                                   task_id=job.task.task_id)
        try:
            data = job.submit(get_chunk, chunk_id, source.device, node=source.node)
            write = job.submit(put_chunk, chunk_id, target.device, data, job.signal, layout,
                               p.get("bandwidth_limit"), node=target.node)
            stored = await job.wait(write)
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self.registry.remove_location(chunk_id, target.node, target.device)
            raise
        if not self.registry.exists(chunk_id):  # deleted with force meanwhile
            await self._drop_quietly(chunk_id, target.node, target.device)
            return {"chunk_id": chunk_id, "deleted": True}
        self.registry.put_location(chunk_id, target.node, target.device, "available",
                                   stored["worker"], job.task.task_id)
        deleted = False
        if p.get("delete_source"):
            self.registry.remove_location(chunk_id, source.node, source.device)
            await self._drop_quietly(chunk_id, source.node, source.device)
            deleted = True
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
            self.registry.put_location(chunk_id, ref.node, ref.device, "downloading",
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
        rows = [r for r in self.registry.locations(chunk_id) if r["status"] != "lost"]
        return sorted(rows, key=lambda r: (r["status"] != "available", _cost(r["device"])))

    def _sources(self, chunk_id: str) -> list[sqlite3.Row]:
        rows = [r for r in self.registry.locations(chunk_id) if r["status"] == "available"]
        return sorted(rows, key=lambda r: _cost(r["device"]))

    def _check_free_target(self, chunk_id: str, target: DeviceRef) -> None:
        for loc in self.registry.locations(chunk_id):
            if (loc["node"], loc["device"]) == (target.node, target.device) and (
                loc["status"] != "lost"
            ):
                raise Conflict(
                    f"chunk {chunk_id} already has a copy on {target} ({loc['status']})",
                    {"chunk_id": chunk_id, "device": str(target)},
                )
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
        """A qualified device of a known node that has it (unknown node or device: NOT_FOUND)."""
        ref = parse_device(text, self.runtime.nodes.names(), field)
        node = self.runtime.nodes.get(ref.node)
        if ref.device not in node.device_names:
            raise NotFound(
                f"node {ref.node} has no device {ref.device!r}",
                {"device": str(ref), "devices": sorted(node.device_names)},
            )
        return ref

    def _check_room(self, node: Node, ref: DeviceRef, size: int | None) -> None:
        available = node.devices.get(ref.device, {}).get("available")
        if size is not None and available is not None and size > available:
            raise InsufficientMemory(
                f"{ref} has {available} bytes available; {size} are needed",
                required=size, available=int(available), device=str(ref),
            )

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

    async def _drop_quietly(self, chunk_id: str, node: str, device: str) -> None:
        """Best effort: remove a copy's bytes from its node (gone if the worker restarted)."""
        try:
            await self.runtime.run_on(node, drop_chunk, chunk_id, device, timeout=10)
        except Exception as exc:
            log.warning("gswarm: could not drop %s from %s:%s: %s", chunk_id, node, device, exc)


def decoded_size(encoded: str) -> int:
    """The byte count base64 `encoded` decodes to (without decoding it)."""
    tail = encoded[-2:]
    return len(encoded) * 3 // 4 - (len(tail) - len(tail.rstrip("=")))


def _cost(device: str) -> int:
    return _SOURCE_PREFERENCE.get(device, 1)


def _node_of(location: dict[str, Any]) -> str:
    return str(location["device"]).rpartition(":")[0]


def _rebuild(exc: WorkerOpError) -> GswarmError:
    return error_from_dict({"code": exc.code, "message": exc.message, "details": exc.details})
