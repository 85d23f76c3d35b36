"""The model store: the registry in SQLite, the bytes on the nodes, copies as tasks.

Bytes never pass through the server: the first copy is made on its node (`acquire_weights`), and a
copy between nodes hands the source worker's `read_weights` future to the target's
`write_weights`, so Dask carries the bytes worker to worker.

It is also the services' `WeightSource` (`storage/weights.py`): `resolve`, `ensure_copy`,
`loader`, `services_changed`; and it asks its `ModelUsers` (`storage/model_users.py`) whether a
copy is in use, to stop a deleted model's services, and to reload a model's new version.

The last ready copy of a model is never removed but with the model: checking, cancelling the
tasks in the way and removing a copy run under the model's lock (`_locks`), and the check is made
again right before each removal, since cancelling awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...core.db import loads
from ...core.errors import (
    Conflict,
    GswarmError,
    InvalidRequest,
    NotFound,
    ResourceUnavailable,
    error_from_dict,
)
from ...core.fetchpolicy import FetchPolicy
from ...core.keylocks import KeyedLocks
from ...core.modelregistry import ModelRegistry, is_memory_device, location_record
from ...core.models_api import (
    CopyRequest,
    DownloadRequest,
    LocationCreate,
    ModelCreate,
    ModelQuery,
    MoveRequest,
)
from ...core.names import DeviceRef, check_model_name, parse_device
from ...core.nodes import Node, NodeChange
from ...core.pagination import paginate
from ...core.placement import Resident, choose_source, free_bytes, plan_room, read_cost
from ...core.redact import has_redacted_userinfo, redact_url
from ...core.sources import Source, parse_source
from ...core.tasks import Task
from ..runtime.cluster import ClusterRuntime
from ..runtime.executor import Job, TaskExecutor
from ..runtime.signals import TaskSignal, WorkerOpError
from .httpfetch import Room, precheck
from .model_users import ModelUsers
from .weights import Loader, ModelSpec
from .weightstore import acquire_weights, drop_weights, load_weights, read_weights, write_weights

log = logging.getLogger(__name__)

DOWNLOAD, COPY, MOVE = "model_download", "model_copy", "model_move"
TASK_TYPES = (DOWNLOAD, COPY, MOVE)

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
        self._locks = KeyedLocks()  # one per model name
        for task_type in TASK_TYPES:
            executor.register(task_type, self._run_download if task_type == DOWNLOAD
                              else self._run_copy)
        executor.queue.listeners.append(self._on_task)

    def start(self) -> None:
        """After the queue restored its tasks: copies-in-progress of tasks no longer running go,
        and memory copies of restarted workers are marked lost once the cluster is seen."""
        queue = self.executor.queue
        for loc in self.registry.all_locations():
            if loc["status"] != "copying":
                continue
            task = queue.get(loc["task_id"]) if loc["task_id"] in queue else None
            if task is None or task.finished:
                self.registry.remove_location(loc["name"], loc["node"], loc["device"])
        self.runtime.listeners.append(self._on_node)

    # -- events -------------------------------------------------------------------------------

    def _emit(self, name: str, change: str, **data: Any) -> None:
        event = {"model_name": name, "change": change, **data}
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # a broken stream must not break the registry
                log.exception("gswarm: model event listener failed")

    def _on_node(self, change: NodeChange) -> None:
        if change.status == "online":
            self.reconcile()

    def _on_task(self, task: Task) -> None:
        """A model task that ended without completing leaves no copy-in-progress behind
        (also tasks that never ran: cancelled while pending, failed dependency)."""
        if task.task_type not in TASK_TYPES or not task.finished or task.status == "completed":
            return
        name = task.params.get("model_name")
        if not name or not self.registry.exists(name):
            return
        for loc in self.registry.locations(name):
            if loc["task_id"] == task.task_id and loc["status"] == "copying":
                self.registry.remove_location(name, loc["node"], loc["device"])
                self._emit(name, "location_removed", device=f"{loc['node']}:{loc['device']}",
                           reason=task.status)
        if task.task_type == DOWNLOAD:
            error = task.error or {"code": "TASK_FAILED", "message": "the download was cancelled",
                                   "details": {"reason": "cancelled"}}
            self.registry.update(name, error=error)
            self._emit(name, "updated", status=self.registry.record(name)["status"])

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
                "locations": [location_record(loc) for loc in self.registry.locations(name)]}

    def node_models(self, node: str) -> dict[str, Any]:
        """The models with a copy on `node`, one row per copy."""
        self.runtime.nodes.get(node)
        self.reconcile()
        rows = []
        for loc in self.registry.all_locations():
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
        ready = [loc for loc in self.registry.locations(name) if loc["status"] == "ready"]
        ready.sort(key=lambda loc: (read_cost(loc["device"]), loc["node"], loc["device"]))
        return [
            ModelCopy(name, loc["node"], loc["device"], row["version"], row["format"],
                      meta.get("arch"), dict(meta.get("config") or {}), loc["size"],
                      row["checksum"])
            for loc in ready
        ]

    def reconcile(self) -> None:
        """Memory copies on a worker that restarted (a new address under the same node) are lost."""
        nodes = {n.name: n for n in self.runtime.nodes.all()}
        for loc in self.registry.all_locations():
            node = nodes.get(loc["node"])
            if (loc["status"] == "ready" and is_memory_device(loc["device"]) and node is not None
                    and node.online and loc["worker"] and node.address != loc["worker"]):
                self.registry.set_location_status(loc["name"], loc["node"], loc["device"], "lost")
                self._emit(loc["name"], "updated", device=f"{loc['node']}:{loc['device']}",
                           status="lost")

    # -- registering --------------------------------------------------------------------------

    async def register(self, req: ModelCreate) -> dict[str, Any]:
        """A new model. builtin:// and file:// answer with their first copy ready; http(s)://
        with the model `downloading` and the download task's id in `task_id`."""
        name = check_model_name(req.model_name)
        if self.registry.exists(name):
            raise Conflict(f"model {name!r} already exists", {"model_name": name})
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
        self.registry.create(name, source_url=redact_url(req.source_url),
                             model_type=req.model_type or arch, metadata=metadata)
        if source.kind == "http":
            return self._start_download(name, source, target, req.checksum, req.priority,
                                        req.dependencies, registered=True)
        try:
            stored = await self._acquire_now(name, 1, target, node, source, req.checksum)
        except BaseException:
            self.registry.delete(name)
            raise
        self._measured(name, stored, metadata)
        self.registry.put_location(name, target.node, target.device, "ready",
                                   size=stored["size"], worker=stored["worker"])
        self._emit(name, "registered", status="ready")
        self._emit(name, "location_added", device=str(target), status="ready")
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
            raise error_from_dict({"code": exc.code, "message": exc.message,
                                   "details": exc.details}) from None
        finally:
            future.release()

    def _measured(self, name: str, stored: dict[str, Any], metadata: dict[str, Any]) -> None:
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
        self._check_free_target(name, target)
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
        loc = self.registry.location(name, source.node, source.device)
        if loc is None or loc["status"] == "lost":
            raise NotFound(f"model {name} has no copy on {source}",
                           {"model_name": name, "device": str(source)})
        if source == target:
            raise Conflict(f"model {name} is already on {target}",
                           {"model_name": name, "device": str(target)})
        self._check_free_target(name, target)
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
            self.registry.put_location(name, target.node, target.device, "copying",
                                       size=row["size"], task_id=task.task_id)
            self._emit(name, "location_added", device=str(target), status="copying",
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
            self._emit(name, "registered", status="downloading", task_id=task.task_id)
        if not task.finished:
            self.registry.put_location(name, target.node, target.device, "copying",
                                       size=row["size"], task_id=task.task_id)
            self._emit(name, "location_added", device=str(target), status="copying",
                       task_id=task.task_id)
        return self.record(name)

    # -- deleting -----------------------------------------------------------------------------

    async def delete(self, name: str, force: bool = False) -> dict[str, Any]:
        """Remove the model and every copy; `Conflict` while services run or tasks use it,
        unless `force` (which stops them first)."""
        async with self._locks(name):
            self.registry.row(name)
            services = self.services.get(name) or {}
            tasks = self._tasks_of(name)
            if (services or tasks) and not force:
                raise Conflict(
                    f"model {name} is in use ({len(services)} service(s), {len(tasks)} task(s)); "
                    "delete with force=true",
                    {"model_name": name, "services": services,
                     "tasks": [t.task_id for t in tasks]},
                )
            await self.users.stop_model_services(name)
            for task in tasks:
                with contextlib.suppress(GswarmError):
                    await self.executor.cancel(task.task_id)
            return await self._delete_now(name)

    async def _delete_now(self, name: str) -> dict[str, Any]:
        """Drop every copy's bytes, then forget the model."""
        removed = []
        for loc in self.registry.locations(name):
            removed.append(f"{loc['node']}:{loc['device']}")
            if loc["status"] != "lost":
                await self._drop_quietly(name, loc["node"], loc["device"])
        self.registry.delete(name)
        self.services.pop(name, None)
        self._emit(name, "deleted", locations_removed=removed)
        return {"model_name": name, "deleted": True, "locations_removed": removed}

    async def drop_copy(self, name: str, device: str, force: bool = False) -> dict[str, Any]:
        """Drop one copy. The last ready copy is never dropped (`Conflict`, force or not);
        a copy in use or being written is refused unless `force`."""
        self.registry.row(name)
        ref = self._target(device, "device")
        async with self._locks(name):
            self._droppable(name, ref)
            busy = [t for t in self._tasks_of(name) if str(ref) in t.resources.get("devices", [])]
            if (busy or self.users.in_use(name, ref.node, ref.device)) and not force:
                raise Conflict(
                    f"the copy of {name} on {ref} is in use; drop it with force=true",
                    {"model_name": name, "device": str(ref), "tasks": [t.task_id for t in busy]},
                )
            for task in busy:
                with contextlib.suppress(GswarmError):
                    await self.executor.cancel(task.task_id)
            self._droppable(name, ref)  # again: a cancelled task may have changed the copies
            await self._remove_copy(name, ref.node, ref.device, reason="dropped")
        return {"model_name": name, "device": str(ref), "deleted": True,
                "locations": self.locations(name)["locations"]}

    def _droppable(self, name: str, ref: DeviceRef) -> None:
        """`NotFound` unless the model has a copy on `ref`; `Conflict` if it is the last ready."""
        self.registry.row(name)
        self.reconcile()
        loc = self.registry.location(name, ref.node, ref.device)
        if loc is None:
            raise NotFound(f"model {name} has no copy on {ref}",
                           {"model_name": name, "device": str(ref)})
        if self._last_ready(loc):
            raise Conflict(
                f"{ref} holds the last copy of model {name}; delete the model instead",
                {"model_name": name, "device": str(ref)},
            )

    def _last_ready(self, loc: sqlite3.Row) -> bool:
        """Whether `loc` is a ready copy and its model has no other."""
        return loc["status"] == "ready" and not any(
            o["status"] == "ready" and (o["node"], o["device"]) != (loc["node"], loc["device"])
            for o in self.registry.locations(loc["name"])
        )

    async def _remove_copy(self, name: str, node: str, device: str, reason: str) -> None:
        """Forget the copy and drop its bytes; never the last ready copy (`Conflict`): checked
        here with no await before the registry forgets it."""
        loc = self.registry.location(name, node, device)
        if loc is None:
            return
        if self._last_ready(loc):
            raise Conflict(f"{node}:{device} holds the last copy of model {name}",
                           {"model_name": name, "device": f"{node}:{device}"})
        self.registry.remove_location(name, node, device)
        if loc["status"] != "lost":
            await self._drop_quietly(name, node, device)
        self._emit(name, "location_removed", device=f"{node}:{device}", reason=reason)

    # -- the services' WeightSource -----------------------------------------------------------

    async def resolve(
        self, name: str, source_url: str | None = None, model_type: str | None = None
    ) -> ModelSpec:
        """The registered model `name` (registered from `source_url` first if unknown; a download
        is awaited)."""
        if not self.registry.exists(name):
            if source_url is None:
                self.registry.row(name)  # ModelNotFound
            with contextlib.suppress(Conflict):  # registered meanwhile by another caller
                await self.register(ModelCreate(model_name=name, source_url=source_url,
                                                model_type=model_type))
        row = self.registry.row(name)
        if row["task_id"] and row["checksum"] is None:  # still downloading its first copy
            task = await self.executor.wait(row["task_id"])
            _raise_unless_completed(task)
            row = self.registry.row(name)
        meta = loads(row["metadata"]) or {}
        if model_type is not None and row["model_type"] != model_type:
            raise InvalidRequest(
                f"model_type: {name} is a {row['model_type']} model, not {model_type!r}",
                {"field": "model_type", "expected": row["model_type"], "got": model_type},
            )
        if not meta.get("arch"):
            raise ResourceUnavailable(f"model {name} has no ready copy", {"model_name": name})
        return ModelSpec(name, meta["arch"], dict(meta.get("config") or {}), row["source_url"],
                         row["version"])

    async def ensure_copy(self, model: ModelSpec | str, node: str, device: str,
                          *, priority: str = "high", evict: bool = True) -> None:
        """A ready copy of the model on `node:device`: at once if there is one, else after a copy
        task from the best copy (its failure raised here)."""
        name = model if isinstance(model, str) else model.name
        self.reconcile()
        loc = self.registry.location(name, node, device)
        if loc is not None and loc["status"] == "ready":
            self.registry.touch(name, node, device)
            return
        if loc is not None and loc["status"] == "copying":
            task = await self.executor.wait(loc["task_id"])
        else:
            if loc is not None:  # lost: forget it, then copy again
                self.registry.remove_location(name, node, device)
            task = await self.add_location(
                name, LocationCreate(device=f"{node}:{device}", priority=priority, evict=evict)
            )
            task = await self.executor.wait(task.task_id)
        _raise_unless_completed(task)

    async def copy_to(self, name: str, device: str, *, priority: str = "normal",
                      evict: bool = False) -> Task:
        """Start a copy task of `name` to `node:device` (answers the task; await
        `executor.wait(task.task_id)` for its end)."""
        return await self.add_location(name, LocationCreate(device=device, priority=priority,
                                                            evict=evict))

    def loader(self, model: ModelSpec, node: str, device: str) -> Loader:
        """The worker-side function that answers (arch, config, params) on `node`."""
        self.registry.touch(model.name, node, device)
        return functools.partial(load_weights, model.name, device)

    def services_changed(self, model_name: str, services: dict[str, str]) -> None:
        if not self.registry.exists(model_name):
            return
        if services:
            self.services[model_name] = dict(services)
        else:
            self.services.pop(model_name, None)
        self._emit(model_name, "updated", services=dict(services))

    # -- task runners -------------------------------------------------------------------------

    async def _run_download(self, job: Job) -> dict[str, Any]:
        p = job.params
        name = p["model_name"]
        target = _ref(p["target"])
        self.registry.row(name)
        try:
            future = job.submit(acquire_weights, name, p["version"], target.device, p["source"],
                                job.signal, p.get("checksum"), self._download_room(name, target),
                                self.fetch_policy, node=target.node)
            stored = await job.wait(future)
        except BaseException:
            await self._forget_target(name, target, job)
            raise
        if not self.registry.exists(name):  # deleted with force meanwhile
            await self._drop_quietly(name, target.node, target.device)
            return {"model_name": name, "deleted": True}
        row = self.registry.row(name)
        if row["checksum"] is not None and row["checksum"] != stored["checksum"] and any(
            loc["status"] == "ready" for loc in self.registry.locations(name)
        ):
            await self._forget_target(name, target, job, drop=True)
            raise Conflict(
                f"the download of {name} differs from its registered copies "
                f"(sha256 {stored['checksum']} != {row['checksum']})",
                {"model_name": name, "expected": row["checksum"], "got": stored["checksum"]},
            )
        self._measured(name, stored, {k: v for k, v in (loads(row["metadata"]) or {}).items()})
        self.registry.put_location(name, target.node, target.device, "ready",
                                   size=stored["size"], worker=stored["worker"],
                                   task_id=job.task.task_id)
        self._emit(name, "location_added", device=str(target), status="ready")
        self._emit(name, "updated", status="ready", checksum=stored["checksum"])
        return {"model_name": name, "device": str(target), "size": stored["size"],
                "checksum": stored["checksum"], "format": stored["format"]}

    async def _run_copy(self, job: Job) -> dict[str, Any]:
        p = job.params
        name = p["model_name"]
        source, target = _ref(p["source"]), _ref(p["target"])
        row = self.registry.row(name)
        self.reconcile()
        loc = self.registry.location(name, source.node, source.device)
        if loc is None or loc["status"] != "ready":
            raise Conflict(f"model {name} has no ready copy on {source} to read from",
                           {"model_name": name, "device": str(source)})
        expect = row["checksum"] if p.get("verify_checksum") else None
        self.registry.put_location(name, target.node, target.device, "copying", size=row["size"],
                                   task_id=job.task.task_id)
        try:
            data = job.submit(read_weights, name, source.device, node=source.node)
            write = job.submit(write_weights, name, row["version"], target.device, data,
                               job.signal, p.get("bandwidth_limit"), expect, node=target.node)
            stored = await job.wait(write)
        except BaseException:
            await self._forget_target(name, target, job)
            raise
        if not self.registry.exists(name):  # deleted with force meanwhile
            await self._drop_quietly(name, target.node, target.device)
            return {"model_name": name, "deleted": True}
        self.registry.touch(name, source.node, source.device)
        self.registry.put_location(name, target.node, target.device, "ready",
                                   size=stored["size"], worker=stored["worker"],
                                   task_id=job.task.task_id)
        self._emit(name, "location_added", device=str(target), status="ready")
        removed = False
        if not p.get("keep_source", True):
            await self._remove_copy(name, source.node, source.device, reason="moved")
            removed = True
        return {"model_name": name, "source": str(source), "target": str(target),
                "size": stored["size"], "source_removed": removed,
                "checksum_verified": expect is not None}

    async def _forget_target(self, name: str, target: DeviceRef, job: Job,
                             drop: bool = False) -> None:
        """After a failed or cancelled write: no location, no bytes."""
        with contextlib.suppress(sqlite3.Error):
            loc = self.registry.location(name, target.node, target.device)
            if loc is not None and loc["task_id"] == job.task.task_id:
                self.registry.remove_location(name, target.node, target.device)
                self._emit(name, "location_removed", device=str(target), reason="failed")
                drop = True
        if drop:
            await self._drop_quietly(name, target.node, target.device)

    # -- new versions and derived models -----------------------------------------------------

    async def write_version(self, job: Job, name: str, node: str, version: int,
                            stored: dict[str, Any]) -> dict[str, Any]:
        """Record `version` of `name`, already written on `node`'s disk by a worker op of `job`
        (which holds the `model:<name>` lock).

        Coherence: every other ready copy is refreshed in place to the new bytes (worker to
        worker, from the new disk copy), so no copy ever serves an older version under the new
        one's number; a copy that cannot be refreshed is dropped. Then the model's users hear of
        it (services reload their replicas)."""
        if not self.registry.exists(name):  # deleted with force meanwhile
            await self._drop_quietly(name, node, "disk")
            raise Conflict(f"model {name} was deleted while it trained", {"model_name": name})
        row = self.registry.row(name)
        if row["version"] != version - 1:
            raise Conflict(f"model {name} is at version {row['version']}, not {version - 1}",
                           {"model_name": name, "version": row["version"]})
        self._measured(name, stored, dict(loads(row["metadata"]) or {}))
        self.registry.update(name, version=version)
        self.registry.put_location(name, node, "disk", "ready", size=stored["size"],
                                   worker=stored.get("worker"), task_id=job.task.task_id)
        self._emit(name, "location_added", device=f"{node}:disk", status="ready")
        refreshed, dropped = await self._refresh_copies(job, name, node, version)
        self._emit(name, "updated", version=version, checksum=stored["checksum"],
                   refreshed=refreshed, dropped=dropped)
        await self.users.model_updated(name, version)
        return {"version": version, "refreshed": refreshed, "dropped": dropped}

    async def _refresh_copies(self, job: Job, name: str, node: str,
                              version: int) -> tuple[list[str], list[str]]:
        """Rewrite every other ready copy of `name` from the new disk copy on `node`."""
        others = [loc for loc in self.registry.locations(name)
                  if (loc["node"], loc["device"]) != (node, "disk") and loc["status"] == "ready"]
        refreshed: list[str] = []
        dropped: list[str] = []
        if not others:
            return refreshed, dropped
        # A signal of its own: refreshing is not cancellable and its progress is not the task's.
        signal = TaskSignal(f"{job.task.task_id}-refresh")
        data = job.submit(read_weights, name, "disk", node=node)
        for loc in others:
            where = f"{loc['node']}:{loc['device']}"
            try:
                write = job.submit(write_weights, name, version, loc["device"], data, signal,
                                   node=loc["node"])
                stored = await job.wait(write)
            except Exception as exc:
                log.warning("gswarm: could not refresh %s on %s to v%s: %s", name, where,
                            version, exc)
                await self._remove_copy(name, loc["node"], loc["device"], reason="stale")
                dropped.append(where)
                continue
            self.registry.put_location(name, loc["node"], loc["device"], "ready",
                                       size=stored["size"], worker=stored["worker"],
                                       task_id=job.task.task_id)
            refreshed.append(where)
        return refreshed, dropped

    def add_derived(self, name: str, origin: str, node: str, stored: dict[str, Any],
                    metadata: dict[str, Any]) -> dict[str, Any]:
        """Register `name`, derived from `origin` (e.g. quantised) and already written as v1 on
        `node`'s disk, with that copy ready. A taken name is `Conflict`."""
        check_model_name(name, "optimized_model_id")
        row = self.registry.row(origin)
        self.registry.create(name, source_url=f"derived://{origin}?version={row['version']}",
                             model_type=row["model_type"], metadata=metadata)
        self._measured(name, stored, metadata)
        self.registry.put_location(name, node, "disk", "ready", size=stored["size"],
                                   worker=stored.get("worker"))
        self._emit(name, "registered", status="ready")
        self._emit(name, "location_added", device=f"{node}:disk", status="ready")
        return self.record(name)

    async def drop_written(self, name: str, node: str, device: str = "disk") -> None:
        """Remove bytes a worker op wrote that the registry does not record."""
        await self._drop_quietly(name, node, device)

    # -- inside -------------------------------------------------------------------------------

    def _tasks_of(self, name: str) -> list[Task]:
        queue = self.executor.queue
        return [t for t in [*queue.tasks("running"), *queue.tasks("pending")]
                if name in t.resources.get("models", []) and t.task_type in TASK_TYPES]

    def _best_source(self, name: str, target: DeviceRef) -> DeviceRef:
        self.reconcile()
        locs = self.registry.locations(name)
        for wanted in ("ready", "copying"):
            candidates = [(loc["node"], loc["device"]) for loc in locs
                          if loc["status"] == wanted
                          and (loc["node"], loc["device"]) != (target.node, target.device)]
            chosen = choose_source(candidates, target.node)
            if chosen is not None:
                return DeviceRef(*chosen)
        raise Conflict(f"model {name} has no copy to copy from", {"model_name": name})

    def _check_free_target(self, name: str, target: DeviceRef) -> None:
        loc = self.registry.location(name, target.node, target.device)
        if loc is not None and loc["status"] != "lost":
            raise Conflict(
                f"model {name} already has a copy on {target} ({loc['status']})",
                {"model_name": name, "device": str(target), "status": loc["status"]},
            )
        if loc is not None:  # a lost copy is replaced
            self.registry.remove_location(name, target.node, target.device)

    async def _make_room(self, name: str, target: DeviceRef, size: int, evict: bool) -> None:
        """`InsufficientMemory` unless `size` bytes fit on `target`, after evicting
        least-recently-used copies kept elsewhere when `evict`.

        One victim at a time, under its model's lock and checked again right before it goes;
        the plan is made again after each (on the room measured at the start plus what was
        freed), as evicting awaits and copies may have changed meanwhile."""
        node = self.runtime.nodes.get(target.node)
        reported = node.devices.get(target.device, {}).get("available")
        cap = self.capacity.get(str(target), self.capacity.get(target.device))
        resident = sum(r.size for r in self._residents(name, target))
        available = free_bytes(reported, cap, resident)
        freed = 0
        while True:
            room = None if available is None else available + freed
            victims = plan_room(size, room, self._residents(name, target), evict=evict,
                                device=str(target))
            if not victims:
                return
            victim = victims[0]
            async with self._locks(victim.model_name):
                loc = self.registry.location(victim.model_name, target.node, target.device)
                if loc is None or not self._evictable(loc):
                    continue  # it changed while we waited: plan again without it
                await self._remove_copy(victim.model_name, target.node, target.device,
                                        reason="evicted")
            freed += victim.size

    def _residents(self, name: str, target: DeviceRef) -> list[Resident]:
        """The copies of models other than `name` on `target`, as the placement policy sees them."""
        return [
            Resident(loc["name"], loc["size"] or 0, loc["last_used"],
                     evictable=self._evictable(loc))
            for loc in self.registry.on_device(target.node, target.device)
            if loc["name"] != name and loc["status"] != "lost"
        ]

    def _evictable(self, loc: sqlite3.Row) -> bool:
        if loc["status"] != "ready" or self.users.in_use(loc["name"], loc["node"], loc["device"]):
            return False
        if any(str(DeviceRef(loc["node"], loc["device"])) in t.resources.get("devices", [])
               for t in self._tasks_of(loc["name"])):
            return False
        return any(o["status"] == "ready" and (o["node"], o["device"]) != (loc["node"],
                                                                          loc["device"])
                   for o in self.registry.locations(loc["name"]))

    def _target(self, text: str | None, field: str) -> DeviceRef:
        """A qualified device of a known node that has it (unknown node or device: NOT_FOUND);
        None: the first online node's disk."""
        if text is None:
            online = self.runtime.nodes.online()
            if not online:
                raise ResourceUnavailable("no node is online")
            return DeviceRef(online[0].name, "disk")
        ref = parse_device(text, self.runtime.nodes.names(), field)
        node = self.runtime.nodes.get(ref.node)
        if ref.device not in node.device_names:
            raise NotFound(f"node {ref.node} has no device {ref.device!r}",
                           {"field": field, "device": str(ref),
                            "devices": sorted(node.device_names)})
        return ref

    async def _precheck(self, source: Source) -> None:
        """An http(s) source the fetch policy denies is refused now, before anything is made."""
        if source.kind == "http":
            await asyncio.to_thread(precheck, source.url, self.fetch_policy)

    def _download_room(self, name: str, target: DeviceRef) -> Room:
        """What a download to `target` may take: the free bytes the node reports, within the
        model capacity left there."""
        reported = self.runtime.nodes.get(target.node).devices.get(target.device, {})
        cap = self.capacity.get(str(target), self.capacity.get(target.device))
        resident = sum(loc["size"] or 0
                       for loc in self.registry.on_device(target.node, target.device)
                       if loc["name"] != name and loc["status"] != "lost")
        return Room(free_bytes(reported.get("available"), cap, resident), str(target))

    async def _drop_quietly(self, name: str, node: str, device: str) -> None:
        """Best effort: remove a copy's bytes from its node (gone already if the worker restarted)."""
        try:
            await self.runtime.run_on(node, drop_weights, name, device, timeout=10)
        except Exception as exc:
            log.warning("gswarm: could not drop model %s from %s:%s: %s", name, node, device, exc)


def _expected(source: Source) -> tuple[str | None, int | None]:
    """The architecture and the byte size a source will have, where known before making it."""
    if source.kind == "builtin":
        from gswarm_kernels.builtin import parse_builtin_url
        from gswarm_kernels.params import param_shapes

        try:
            spec = parse_builtin_url(source.url)
        except ValueError as exc:
            raise InvalidRequest(f"source_url: {exc}", {"field": "source_url"}) from None
        shapes = param_shapes(spec.arch, spec.config)
        return spec.arch, sum(4 * math.prod(s) for s in shapes.values())
    if source.kind == "file" and source.path is not None:
        return None, os.path.getsize(source.path)
    return None, None


def _raise_unless_completed(task: Task) -> None:
    if task.status == "completed":
        return
    if task.error:
        raise error_from_dict(task.error)
    raise Conflict(f"task {task.task_id} was {task.status}", {"task_id": task.task_id})


def _ref(text: str) -> DeviceRef:
    node, _, device = text.rpartition(":")
    return DeviceRef(node, device)
