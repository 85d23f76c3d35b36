"""The model store: the registry in SQLite, the bytes on the nodes, copies as tasks.

Bytes never pass through the server: the first copy is made on its node (`acquire_weights`), and a
copy between nodes hands the source worker's `read_weights` future to the target's
`write_weights`, so Dask carries the bytes worker to worker.

The services reach it as their `WeightSource` through `storage/weight_source.py`, training
through `storage/versions.py`; it asks its `ModelUsers` (`storage/model_users.py`) whether a copy
is in use and to stop a deleted model's services.

A model's entry is recorded with its first copy, in one transaction (an http(s) source: with its
download task), so a registration cut short leaves no entry without bytes.

The rules of copies are the copy engine's (`storage/engine.py`): the last ready copy of a model is
never removed but with the model (checking, cancelling the tasks in the way and removing a copy
run under the model's lock, and the check is made again right before each removal, since
cancelling awaits); copies being written go with their task; memory copies of gone workers are
lost; eviction frees least-recently-used copies kept elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...backends import checkpoints
from ...core.db import loads
from ...core.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    ResourceUnavailable,
    error_from_dict,
)
from ...core.fetchpolicy import FetchPolicy
from ...core.modelregistry import ModelRegistry, location_record
from ...core.models_api import (
    CopyRequest,
    DownloadRequest,
    LocationCreate,
    ModelCreate,
    ModelQuery,
    MoveRequest,
)
from ...core.names import DeviceRef, check_model_name
from ...core.nodes import Node, NodeChange
from ...core.pagination import paginate
from ...core.placement import choose_source, read_cost
from ...core.redact import has_redacted_userinfo, redact_url
from ...core.sources import Source, parse_source
from ...core.tasks import Task
from ..runtime.cluster import ClusterRuntime
from ..runtime.executor import Job, TaskExecutor
from ..runtime.signals import TaskSignal, WorkerOpError, api_error
from .engine import CopyEngine, Payload
from .httpfetch import Room, precheck
from .model_users import ModelUsers
from .weightstore import acquire_weights, drop_weights, read_weights, write_weights

log = logging.getLogger(__name__)

DOWNLOAD, COPY, MOVE = "model_download", "model_copy", "model_move"
TASK_TYPES = (DOWNLOAD, COPY, MOVE)
MODELS = Payload("model", "model_name", "ready", frozenset({"copying"}), TASK_TYPES, "models",
                 read_weights, drop_weights, busy_types=TASK_TYPES)

Listener = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class ModelCopy:
    """A ready copy, as the serving side needs to know it."""

    model_name: str
    node: str
    device: str
    version: int
    format: str | None
    arch: str | None
    config: dict[str, Any]
    size: int | None
    checksum: str | None


class ModelStore:
    def __init__(
        self,
        registry: ModelRegistry,
        runtime: ClusterRuntime,
        executor: TaskExecutor,
        model_roots: list[str],
        capacity: dict[str, int] | None = None,
        fetch_policy: FetchPolicy | None = None,
        users: ModelUsers | None = None,
    ) -> None:
        self.registry = registry
        self.runtime = runtime
        self.executor = executor
        self.model_roots = list(model_roots)
        self.capacity = dict(capacity or {})  # bytes models may take per device (bare or node:dev)
        self.fetch_policy = fetch_policy or FetchPolicy()  # where http(s) sources may be fetched
        self.listeners: list[Listener] = []
        self.services: dict[str, dict[str, str]] = {}  # model -> {node: url}, from the services
        self.users = users if users is not None else ModelUsers()
        self.engine = CopyEngine(MODELS, registry.copies, registry.exists, runtime, executor,
                                 notify=self.emit, in_use=self.users.in_use)
        self.copies = registry.copies
        self._registering: set[str] = set()  # names held by registrations not recorded yet
        for task_type in TASK_TYPES:
            executor.register(task_type, self._run_download if task_type == DOWNLOAD
                              else self._run_copy)
        executor.queue.listeners.append(self._on_task)

    def start(self) -> None:
        """After the queue restored its tasks: copies-in-progress of tasks no longer running go,
        and memory copies of restarted workers are marked lost once the cluster is seen."""
        self.engine.recover()
        self.runtime.listeners.append(self._on_node)

    # -- events -------------------------------------------------------------------------------

    def emit(self, name: str, change: str, **data: Any) -> None:
        event = {"model_name": name, "change": change, **data}
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # a broken stream must not break the registry
                log.exception("gswarm: model event listener failed")

    def _on_node(self, change: NodeChange) -> None:
        """Seen at once, not at the next read: a worker dropped and back under its old address
        (a fixed port) would otherwise pass for the one that held the copies."""
        self.reconcile()

    def _on_task(self, task: Task) -> None:
        """A model task that ended without completing leaves no copy-in-progress behind
        (also tasks that never ran: cancelled while pending, failed dependency)."""
        name = self.engine.forget_unfinished(task)
        if name is None:
            return
        if task.task_type == DOWNLOAD:
            error = task.error or {"code": "TASK_FAILED", "message": "the download was cancelled",
                                   "details": {"reason": "cancelled"}}
            self.registry.update(name, error=error)
            self.emit(name, "updated", status=self.registry.record(name)["status"])

    # -- reading ------------------------------------------------------------------------------

    def record(self, name: str) -> dict[str, Any]:
        self.reconcile()
        return self.registry.record(name, self.services.get(name))

    def list(self, query: ModelQuery) -> dict[str, Any]:
        self.reconcile()
        records = [self.registry.record(n, self.services.get(n)) for n in self.registry.names()]
        if query.type is not None:
            records = [r for r in records if r["model_type"] == query.type]
        if query.status is not None:
            records = [r for r in records if r["status"] == query.status]
        if query.location is not None:
            want = query.location
            records = [
                r for r in records
                if any(loc["device"] == want or loc["device"].rpartition(":")[2] == want
                       for loc in r["locations"])
            ]
        return paginate(records, query, "models")

    def locations(self, name: str) -> dict[str, Any]:
        self.reconcile()
        self.registry.row(name)
        return {"model_name": name,
                "locations": [location_record(loc) for loc in self.copies.of(name)]}

    def node_models(self, node: str) -> dict[str, Any]:
        """The models with a copy on `node`, one row per copy."""
        self.runtime.nodes.get(node)
        self.reconcile()
        rows = []
        for loc in self.copies.all():
            if loc["node"] != node:
                continue
            row = self.registry.row(loc["name"])
            rows.append({
                "model_name": loc["name"],
                "model_type": row["model_type"],
                "device": loc["device"],
                "status": loc["status"],
                "size": loc["size"],
                "version": row["version"],
                "updated_at": location_record(loc)["updated_at"],
            })
        return {"node_id": node, "models": rows}

    def ready_copies(self, name: str) -> list[ModelCopy]:
        """Every ready copy of `name` (`ModelNotFound` if unknown), cheapest to read first."""
        self.reconcile()
        row = self.registry.row(name)
        meta = loads(row["metadata"]) or {}
        ready = [loc for loc in self.copies.of(name) if loc["status"] == "ready"]
        ready.sort(key=lambda loc: (read_cost(loc["device"]), loc["node"], loc["device"]))
        return [
            ModelCopy(name, loc["node"], loc["device"], row["version"], row["format"],
                      meta.get("arch"), dict(meta.get("config") or {}), loc["size"],
                      row["checksum"])
            for loc in ready
        ]

    def reconcile(self) -> None:
        """Memory copies of a worker that is gone are lost."""
        self.engine.reconcile()

    # -- registering --------------------------------------------------------------------------

    async def register(self, req: ModelCreate) -> dict[str, Any]:
        """A new model. builtin:// and file:// answer with their first copy ready; http(s)://
        with the model `downloading` and the download task's id in `task_id`. The name is held
        while the registration runs."""
        name = check_model_name(req.model_name)
        if self.registry.exists(name) or name in self._registering:
            raise Conflict(f"model {name!r} already exists", {"model_name": name})
        self._registering.add(name)
        try:
            return await self._register(name, req)
        finally:
            self._registering.discard(name)

    async def _register(self, name: str, req: ModelCreate) -> dict[str, Any]:
        source = parse_source(req.source_url, self.model_roots)
        await self._precheck(source)
        arch, estimate = _expected(source)
        if req.model_type is not None and arch is not None and req.model_type != arch:
            raise InvalidRequest(
                f"model_type {req.model_type!r} does not match the source's architecture {arch!r}",
                {"field": "model_type", "expected": arch},
            )
        target = self._target(req.download_to, "download_to")
        node = self.runtime.nodes.online_node(target.node)
        if estimate is not None:
            await self._make_room(name, target, estimate, req.evict)
        metadata = dict(req.metadata)
        entry = {"source_url": redact_url(req.source_url), "model_type": req.model_type or arch,
                 "metadata": metadata}
        if source.kind == "http":
            self.registry.create(name, **entry)
            return self._start_download(name, source, target, req.checksum, req.priority,
                                        req.dependencies, registered=True)
        stored = await self._acquire_now(name, 1, target, node, source, req.checksum)
        # The entry comes with its first copy, in one transaction: a registration cut short
        # (a failure, a killed server) never leaves an entry without bytes.
        try:
            with self.registry.db.transaction():
                self.registry.create(name, **entry)
                self.measured(name, stored, metadata)
                self.copies.put(name, target.node, target.device, "ready",
                                size=stored["size"], worker=stored["worker"])
        except BaseException:
            await self.engine.drop_quietly(name, target.node, target.device)
            raise
        self.emit(name, "registered", status="ready")
        self.emit(name, "location_added", device=str(target), status="ready")
        return self.record(name)

    async def _acquire_now(self, name: str, version: int, target: DeviceRef, node: Node,
                           source: Source, checksum: str | None) -> dict[str, Any]:
        client = self.runtime.require_client()
        future = client.submit(
            acquire_weights, name, version, target.device, source.params(),
            TaskSignal(f"register-{name}"), checksum, workers=[node.address],
            allow_other_workers=False, pure=False,
        )
        try:
            return await future
        except WorkerOpError as exc:
            if exc.details.get("field") == "checksum":
                # The caller's checksum does not match the source's bytes: its request is wrong.
                raise InvalidRequest(exc.message, exc.details) from None
            raise api_error(exc) from None
        finally:
            future.release()

    def measured(self, name: str, stored: dict[str, Any], metadata: dict[str, Any]) -> None:
        row = self.registry.row(name)
        measured = stored["metadata"]
        self.registry.update(
            name,
            size=stored["size"],
            checksum=stored["checksum"],
            format=stored["format"],
            metadata={**metadata, **measured},
            model_type=row["model_type"] or measured.get("arch"),
            error=None,
        )

    # -- task-starting requests ---------------------------------------------------------------

    async def download(self, name: str, req: DownloadRequest) -> Task:
        row = self.registry.row(name)
        if req.source_url is None and has_redacted_userinfo(row["source_url"]):
            raise InvalidRequest(
                f"the credentials of {name}'s source_url were not kept: give source_url again",
                {"field": "source_url"},
            )
        source = parse_source(req.source_url or row["source_url"], self.model_roots)
        await self._precheck(source)
        target = self._target(req.target_device, "target_device")
        self.runtime.nodes.online_node(target.node)
        self._free_target(name, target)
        if row["size"] is not None:
            await self._make_room(name, target, row["size"], req.evict)
        checksum = req.checksum or (row["checksum"] if req.verify_checksum else None)
        self._start_download(name, source, target, checksum, req.priority, req.dependencies)
        return self.executor.queue.get(self.registry.row(name)["task_id"])

    async def move(self, name: str, req: MoveRequest) -> Task:
        return await self._copy_request(
            name, req.source_device, req.target_device, MOVE, keep_source=req.keep_source,
            bandwidth_limit=req.bandwidth_limit, verify=req.verify_checksum, evict=req.evict,
            priority=req.priority, dependencies=req.dependencies,
        )

    async def copy(self, name: str, req: CopyRequest) -> Task:
        return await self._copy_request(
            name, req.source_device, req.target_device, COPY, keep_source=True,
            bandwidth_limit=req.bandwidth_limit, verify=req.verify_checksum, evict=req.evict,
            priority=req.priority, dependencies=req.dependencies,
        )

    async def add_location(self, name: str, req: LocationCreate) -> Task:
        """A copy on `req.device` from the best existing copy."""
        self.registry.row(name)
        target = self._target(req.device, "device")
        source = self._best_source(name, target)
        return await self._copy_request(
            name, str(source), str(target), COPY, keep_source=True, bandwidth_limit=None,
            verify=False, evict=req.evict, priority=req.priority, dependencies=req.dependencies,
        )

    async def _copy_request(
        self, name: str, source_text: str, target_text: str, kind: str, *, keep_source: bool,
        bandwidth_limit: int | None, verify: bool, evict: bool, priority: str,
        dependencies: list[str],
    ) -> Task:
        row = self.registry.row(name)
        source = self._target(source_text, "source_device")
        target = self._target(target_text, "target_device")
        self.runtime.nodes.online_node(target.node)
        self.reconcile()
        loc = self.copies.get(name, source.node, source.device)
        if loc is None or loc["status"] == "lost":
            raise NotFound(f"model {name} has no copy on {source}",
                           {"model_name": name, "device": str(source)})
        if source == target:
            raise Conflict(f"model {name} is already on {target}",
                           {"model_name": name, "device": str(target)})
        self._free_target(name, target)
        if row["size"] is not None:
            await self._make_room(name, target, row["size"], evict)
        task = self.executor.submit(
            kind,
            name,
            priority=priority,
            dependencies=dependencies,
            resources={"devices": [str(source), str(target)], "models": [name]},
            params={
                "model_name": name,
                "source": str(source),
                "target": str(target),
                "keep_source": keep_source,
                "bandwidth_limit": bandwidth_limit,
                "verify_checksum": verify,
            },
            locks=[f"model:{name}"],
        )
        if not task.finished:
            self.copies.put(name, target.node, target.device, "copying",
                                       size=row["size"], task_id=task.task_id)
            self.emit(name, "location_added", device=str(target), status="copying",
                       task_id=task.task_id)
        return task

    def _start_download(
        self, name: str, source: Source, target: DeviceRef, checksum: str | None, priority: str,
        dependencies: list[str], registered: bool = False,
    ) -> dict[str, Any]:
        row = self.registry.row(name)
        try:
            task = self.executor.submit(
                DOWNLOAD,
                name,
                priority=priority,
                dependencies=dependencies,
                resources={"devices": [str(target)], "models": [name]},
                params={"model_name": name, "source": source.params(), "target": str(target),
                        "checksum": checksum, "version": row["version"]},
                locks=[f"model:{name}"],
            )
        except BaseException:
            if registered:
                self.registry.delete(name)
            raise
        self.registry.update(name, task_id=task.task_id, error=task.error)
        if registered:
            self.emit(name, "registered", status="downloading", task_id=task.task_id)
        if not task.finished:
            self.copies.put(name, target.node, target.device, "copying",
                                       size=row["size"], task_id=task.task_id)
            self.emit(name, "location_added", device=str(target), status="copying",
                       task_id=task.task_id)
        return self.record(name)

    # -- deleting -----------------------------------------------------------------------------

    async def delete(self, name: str, force: bool = False) -> dict[str, Any]:
        """Remove the model and every copy; `Conflict` while services run or tasks use it,
        unless `force` (which stops them first)."""
        async with self.engine.locks(name):
            self.registry.row(name)
            services = self.services.get(name) or {}
            tasks = self.engine.tasks_using(name)
            if (services or tasks) and not force:
                raise Conflict(
                    f"model {name} is in use ({len(services)} service(s), {len(tasks)} task(s)); "
                    "delete with force=true",
                    {"model_name": name, "services": services,
                     "tasks": [t.task_id for t in tasks]},
                )
            await self.users.stop_model_services(name)
            await self.engine.cancel(tasks)
            return await self._delete_now(name)

    async def _delete_now(self, name: str) -> dict[str, Any]:
        """Drop every copy's bytes, then forget the model."""
        removed = await self.engine.drop_all(name)
        self.registry.delete(name)
        self.services.pop(name, None)
        self.emit(name, "deleted", locations_removed=removed)
        return {"model_name": name, "deleted": True, "locations_removed": removed}

    async def drop_copy(self, name: str, device: str, force: bool = False) -> dict[str, Any]:
        """Drop one copy. The last ready copy is never dropped (`Conflict`, force or not);
        a copy in use or being written is refused unless `force`."""
        self.registry.row(name)
        ref = self._target(device, "device")
        async with self.engine.locks(name):
            self._droppable(name, ref)
            busy = [t for t in self.engine.tasks_using(name) if str(ref) in t.resources.get("devices", [])]
            if (busy or self.users.in_use(name, ref.node, ref.device)) and not force:
                raise Conflict(
                    f"the copy of {name} on {ref} is in use; drop it with force=true",
                    {"model_name": name, "device": str(ref), "tasks": [t.task_id for t in busy]},
                )
            await self.engine.cancel(busy)
            self._droppable(name, ref)  # again: a cancelled task may have changed the copies
            await self.engine.remove_copy(name, ref.node, ref.device, reason="dropped")
        return {"model_name": name, "device": str(ref), "deleted": True,
                "locations": self.locations(name)["locations"]}

    def _droppable(self, name: str, ref: DeviceRef) -> None:
        """`NotFound` unless the model has a copy on `ref`; `Conflict` if it is the last ready."""
        self.registry.row(name)
        self.reconcile()
        loc = self.copies.get(name, ref.node, ref.device)
        if loc is None:
            raise NotFound(f"model {name} has no copy on {ref}",
                           {"model_name": name, "device": str(ref)})
        if self.engine.last_ready(loc):
            raise Conflict(
                f"{ref} holds the last copy of model {name}; delete the model instead",
                {"model_name": name, "device": str(ref)},
            )

    # -- what the services show ---------------------------------------------------------------

    def services_changed(self, model_name: str, services: dict[str, str]) -> None:
        if not self.registry.exists(model_name):
            return
        if services:
            self.services[model_name] = dict(services)
        else:
            self.services.pop(model_name, None)
        self.emit(model_name, "updated", services=dict(services))

    # -- task runners -------------------------------------------------------------------------

    async def _run_download(self, job: Job) -> dict[str, Any]:
        p = job.params
        name = p["model_name"]
        target = _ref(p["target"])
        self.registry.row(name)
        stored = await self.engine.run_write(
            job, name, target, acquire_weights, name, p["version"], target.device, p["source"],
            job.signal, p.get("checksum"), self._download_room(name, target), self.fetch_policy)
        if stored is None:
            return {"model_name": name, "deleted": True}
        row = self.registry.row(name)
        if row["checksum"] is not None and row["checksum"] != stored["checksum"] and any(
            loc["status"] == "ready" for loc in self.copies.of(name)
        ):
            await self.engine.forget_target(name, target, job, drop=True)
            raise Conflict(
                f"the download of {name} differs from its registered copies "
                f"(sha256 {stored['checksum']} != {row['checksum']})",
                {"model_name": name, "expected": row["checksum"], "got": stored["checksum"]},
            )
        self.measured(name, stored, {k: v for k, v in (loads(row["metadata"]) or {}).items()})
        self.copies.put(name, target.node, target.device, "ready", size=stored["size"],
                        worker=stored["worker"], task_id=job.task.task_id)
        self.emit(name, "location_added", device=str(target), status="ready")
        self.emit(name, "updated", status="ready", checksum=stored["checksum"])
        return {"model_name": name, "device": str(target), "size": stored["size"],
                "checksum": stored["checksum"], "format": stored["format"]}

    async def _run_copy(self, job: Job) -> dict[str, Any]:
        p = job.params
        name = p["model_name"]
        source, target = _ref(p["source"]), _ref(p["target"])
        row = self.registry.row(name)
        self.reconcile()
        loc = self.copies.get(name, source.node, source.device)
        if loc is None or loc["status"] != "ready":
            raise Conflict(f"model {name} has no ready copy on {source} to read from",
                           {"model_name": name, "device": str(source)})
        expect = row["checksum"] if p.get("verify_checksum") else None
        keep = p.get("keep_source", True)
        stored = await self.engine.run_copy(job, name, source, target, write_weights,
                                            row["version"], p.get("bandwidth_limit"), expect,
                                            size=row["size"], keep_source=keep)
        if stored is None:
            return {"model_name": name, "deleted": True}
        removed = not keep
        return {"model_name": name, "source": str(source), "target": str(target),
                "size": stored["size"], "source_removed": removed,
                "checksum_verified": expect is not None}

    # -- inside -------------------------------------------------------------------------------

    def _best_source(self, name: str, target: DeviceRef) -> DeviceRef:
        self.reconcile()
        locs = self.copies.of(name)
        for wanted in ("ready", "copying"):
            candidates = [(loc["node"], loc["device"]) for loc in locs
                          if loc["status"] == wanted
                          and (loc["node"], loc["device"]) != (target.node, target.device)]
            chosen = choose_source(candidates, target.node)
            if chosen is not None:
                return DeviceRef(*chosen)
        raise Conflict(f"model {name} has no copy to copy from", {"model_name": name})

    def _free_target(self, name: str, target: DeviceRef) -> None:
        loc = self.engine.check_free_target(name, target)
        if loc is not None:  # a lost copy is replaced
            self.copies.remove(name, target.node, target.device)

    async def _make_room(self, name: str, target: DeviceRef, size: int, evict: bool) -> None:
        """`InsufficientMemory` unless `size` bytes fit on `target`, evicting when `evict`."""
        await self.engine.make_room(name, target, size, evict, self._capacity(target))

    def _capacity(self, target: DeviceRef) -> int | None:
        return self.capacity.get(str(target), self.capacity.get(target.device))

    def _target(self, text: str | None, field: str) -> DeviceRef:
        """A qualified device of a known node that has it (unknown node or device: NOT_FOUND);
        None: the first online node's disk."""
        if text is None:
            online = self.runtime.nodes.online()
            if not online:
                raise ResourceUnavailable("no node is online")
            return DeviceRef(online[0].name, "disk")
        return self.engine.device(text, field)

    async def _precheck(self, source: Source) -> None:
        """An http(s) source the fetch policy denies is refused now, before anything is made."""
        if source.kind == "http":
            await asyncio.to_thread(precheck, source.url, self.fetch_policy)

    def _download_room(self, name: str, target: DeviceRef) -> Room:
        """What a download to `target` may take: the free bytes the node reports, within the
        model capacity left there."""
        return Room(self.engine.room(name, target, self._capacity(target)), str(target))

def _expected(source: Source) -> tuple[str | None, int | None]:
    """The architecture and the byte size a source will have, where known before making it."""
    if source.kind == "builtin":
        return checkpoints.builtin_expected(source.url)
    if source.kind == "file" and source.path is not None:
        return None, os.path.getsize(source.path)
    return None, None


def raise_unless_completed(task: Task) -> None:
    if task.status == "completed":
        return
    if task.error:
        raise error_from_dict(task.error)
    raise Conflict(f"task {task.task_id} was {task.status}", {"task_id": task.task_id})


def _ref(text: str) -> DeviceRef:
    node, _, device = text.rpartition(":")
    return DeviceRef(node, device)
