"""The data pool: chunk metadata in SQLite, bytes on the nodes, moves and transfers as tasks.

Bytes never pass through the server on a move or transfer: the target worker's `put_chunk` takes
the source worker's `get_chunk` future, so Dask carries the bytes worker to worker. They pass
through the server only where it is their end (an upload in `POST /data`, a `content` read).

New chunks (uploads and URL downloads) are `storage/uploads.py`'s (`ChunkUploads`, which runs
the `download` tasks); this pool runs moves and transfers and answers reads.

The rules of copies (the last one never removed but with its chunk, copies being written
forgotten with their task, memory copies of gone workers lost) are the copy engine's
(`storage/engine.py`); this face adds what is a chunk's own: reads and references.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections import Counter
from collections.abc import Iterator
from typing import Any

from ...core.chunks import ChunkRegistry
from ...core.data_api import ChunkMove, ChunkQuery, ChunkTransfer
from ...core.db import loads
from ...core.errors import (
    Conflict,
    GswarmError,
    InvalidRequest,
    NetworkError,
    NotFound,
    ResourceUnavailable,
)
from ...core.locations import is_memory_device
from ...core.names import DeviceRef
from ...core.nodes import NodeChange
from ...core.pagination import paginate
from ...core.placement import read_cost
from ...core.tasks import Task
from ..runtime.cluster import ClusterRuntime
from ..runtime.executor import Job, TaskExecutor
from .chunkstore import drop_chunk, get_chunk, put_chunk
from .engine import CopyEngine, Payload, Reservations

log = logging.getLogger(__name__)
TASK_TYPES = ("download", "move", "transfer")
CHUNKS = Payload("chunk", "chunk_id", "available", frozenset({"copying", "downloading"}),
                 TASK_TYPES, "chunks", get_chunk, drop_chunk)


class DataPool:
    def __init__(
        self,
        registry: ChunkRegistry,
        runtime: ClusterRuntime,
        executor: TaskExecutor,
        max_chunk_bytes: int = 2**30,
        reservations: Reservations | None = None,
    ) -> None:
        self.registry = registry
        self.runtime = runtime
        self.executor = executor
        self.max_chunk_bytes = max_chunk_bytes  # the largest chunk an upload or download makes
        self._held: Counter[str] = Counter()
        self.engine = CopyEngine(CHUNKS, registry.copies, registry.exists, runtime, executor,
                                 reservations=reservations)
        self.copies = registry.copies
        executor.register("move", self._run_copy)
        executor.register("transfer", self._run_copy)
        executor.queue.listeners.add(self._on_task)

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
        self.runtime.listeners.add(self._on_node)

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
                self.runtime.nodes.online_node(node)
            except GswarmError as exc:
                last = exc
                continue
            try:
                array = await self.runtime.run_on(node, get_chunk, chunk_id, device)
            except (NetworkError, ResourceUnavailable) as exc:  # its worker went away
                last = exc
                continue
            except GswarmError as exc:  # the worker's answer: no such copy there
                if exc.code == "NOT_FOUND" and is_memory_device(device):
                    self.copies.set_status(chunk_id, node, device, "lost")
                last = NotFound(exc.message)
                continue
            self.registry.count_access(chunk_id)
            return await asyncio.to_thread(bytes, array.data), row["format"]  # up to a GiB
        if last is not None and not isinstance(last, NotFound):
            raise last
        raise Conflict(
            f"chunk {chunk_id} has no available copy",
            {"chunk_id": chunk_id, "locations": self.registry.record(chunk_id)["locations"]},
        )

    # -- writing ------------------------------------------------------------------------------

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
        self.engine.check_room(target, row["size"], chunk_id)
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
        self.engine.check_room(target, row["size"], chunk_id)
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

def _node_of(location: dict[str, Any]) -> str:
    return str(location["device"]).rpartition(":")[0]
