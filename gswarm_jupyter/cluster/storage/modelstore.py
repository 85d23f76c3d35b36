"""The model store: the registry in SQLite, the bytes on the nodes, copies as tasks.

Bytes never pass through the server: the first copy is made on its node (`acquire_weights`), and a
copy between nodes hands the source worker's `read_weights` future to the target's
`write_weights`, so Dask carries the bytes worker to worker.

The services reach it as their `WeightSource` through `storage/weight_source.py`, training
through `storage/versions.py`; it asks its `ModelUsers` (`storage/model_users.py`) whether a copy
is in use and to stop a deleted model's services.

Registering a model and downloading a copy from its source are `storage/registration.py`'s
(`ModelSources`, which runs the `model_download` tasks); this store runs copies and moves.

The rules of copies are the copy engine's (`storage/engine.py`): the last ready copy of a model is
never removed but with the model (checking, cancelling the tasks in the way and removing a copy
run under the model's lock, and the check is made again right before each removal, since
cancelling awaits); copies being written go with their task; memory copies of gone workers are
lost; eviction frees least-recently-used copies kept elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...core.db import loads
from ...core.errors import (
    Conflict,
    NotFound,
    ResourceUnavailable,
    error_from_dict,
)
from ...core.listeners import Listeners
from ...core.modelregistry import ModelRegistry, location_record
from ...core.models_api import (
    CopyRequest,
    LocationCreate,
    ModelQuery,
    MoveRequest,
)
from ...core.names import DeviceRef
from ...core.nodes import NodeChange
from ...core.pagination import paginate
from ...core.placement import choose_source, read_cost
from ...core.tasks import Task
from ..runtime.cluster import ClusterRuntime
from ..runtime.executor import Job, TaskExecutor
from .engine import CopyEngine, Payload, Reservations
from .model_users import ModelUsers
from .weight_ops import drop_weights, read_weights, write_weights

DOWNLOAD, COPY, MOVE = "model_download", "model_copy", "model_move"
TASK_TYPES = (DOWNLOAD, COPY, MOVE)
MODELS = Payload("model", "model_name", "ready", frozenset({"copying"}), TASK_TYPES, "models",
                 read_weights, drop_weights, busy_types=TASK_TYPES)



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
        users: ModelUsers,
        capacity: dict[str, int] | None = None,
        reservations: Reservations | None = None,
    ) -> None:
        self.registry = registry
        self.runtime = runtime
        self.executor = executor
        self.capacity = dict(capacity or {})  # bytes models may take per device (bare or node:dev)
        self.listeners: Listeners[dict[str, Any]] = Listeners("model event")
        self.services: dict[str, dict[str, str]] = {}  # model -> {node: url}, from the services
        self.users = users
        self.engine = CopyEngine(MODELS, registry.copies, registry.exists, runtime, executor,
                                 notify=self.emit, in_use=self.users.in_use,
                                 reservations=reservations)
        self.copies = registry.copies
        for task_type in (COPY, MOVE):
            executor.register(task_type, self._run_copy)
        executor.queue.listeners.add(self._on_task)

    def start(self) -> None:
        """After the queue restored its tasks: copies-in-progress of tasks no longer running go,
        and memory copies of restarted workers are marked lost once the cluster is seen."""
        self.engine.recover()
        self.runtime.listeners.add(self._on_node)

    # -- events -------------------------------------------------------------------------------

    def emit(self, name: str, change: str, **data: Any) -> None:
        event = {"model_name": name, "change": change, **data}
        self.listeners.emit(event)  # a broken stream does not break the registry

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

    def measured(self, name: str, stored: dict[str, Any], metadata: dict[str, Any]) -> None:
        row = self.registry.row(name)
        measured = stored["metadata"]
        self.registry.update(
            name,
            size=stored["size"],
            checksum=stored["checksum"],
            format=stored["format"],
            metadata={**metadata, **measured},
            model_type=measured.get("model_type") or row["model_type"] or measured.get("arch"),
            error=None,
        )

    # -- task-starting requests ---------------------------------------------------------------

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
        target = self.target(req.device, "device")
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
        source = self.target(source_text, "source_device")
        target = self.target(target_text, "target_device")
        self.runtime.nodes.online_node(target.node)
        self.reconcile()
        loc = self.copies.get(name, source.node, source.device)
        if loc is None or loc["status"] == "lost":
            raise NotFound(f"model {name} has no copy on {source}",
                           {"model_name": name, "device": str(source)})
        if source == target:
            raise Conflict(f"model {name} is already on {target}",
                           {"model_name": name, "device": str(target)})
        self.free_target(name, target)
        if row["size"] is not None:
            await self.make_room(name, target, row["size"], evict)
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
        ref = self.target(device, "device")
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

    async def _run_copy(self, job: Job) -> dict[str, Any]:
        p = job.params
        name = p["model_name"]
        source, target = device_ref(p["source"]), device_ref(p["target"])
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

    def free_target(self, name: str, target: DeviceRef) -> None:
        """`Conflict` if `target` holds a copy of `name` (a lost one is replaced)."""
        loc = self.engine.check_free_target(name, target)
        if loc is not None:  # a lost copy is replaced
            self.copies.remove(name, target.node, target.device)

    async def make_room(self, name: str, target: DeviceRef, size: int, evict: bool) -> None:
        """`InsufficientMemory` unless `size` bytes fit on `target`, evicting when `evict`."""
        await self.engine.make_room(name, target, size, evict, self.capacity_of(target))

    def capacity_of(self, target: DeviceRef) -> int | None:
        """The bytes models may take on `target`, where configured."""
        return self.capacity.get(str(target), self.capacity.get(target.device))

    def target(self, text: str | None, field: str) -> DeviceRef:
        """A qualified device of a known node that has it (unknown node or device: NOT_FOUND);
        None: the first online node's disk."""
        if text is None:
            online = self.runtime.nodes.online()
            if not online:
                raise ResourceUnavailable("no node is online")
            return DeviceRef(online[0].name, "disk")
        return self.engine.device(text, field)


def raise_unless_completed(task: Task) -> None:
    if task.status == "completed":
        return
    if task.error:
        raise error_from_dict(task.error)
    raise Conflict(f"task {task.task_id} was {task.status}", {"task_id": task.task_id})


def device_ref(text: str) -> DeviceRef:
    node, _, device = text.rpartition(":")
    return DeviceRef(node, device)
