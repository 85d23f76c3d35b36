"""The copy engine: one set of rules for the copies of both payloads on the nodes, data-pool chunks
and model weights, over their location table (`core.locations.LocationTable`).

Invariants it holds for both:
- a copy leaves only through `remove_copy` (or with its whole entry, `drop_all`), and never the
  last ready copy: the check and the removal from the table run with no await between them, under
  the entry's lock (`locks`) where the caller races other removals;
- a copy being written is recorded with its task (`copying`/`downloading`) and is forgotten, bytes
  and row, when that task ends without completing (`forget_unfinished`, `recover` after a restart);
- a memory copy of a worker that is gone is `lost` (`reconcile`);
- bytes travel worker to worker: a copy hands the source worker's read future to the target's write,
  or, between two workers of one host, the target reads the source's pinned memory, else a
  shared-memory file; neither the pin nor the file outlives the copy;
- room on a device is what the node reports, less what `Reservations` withholds there (others'
  allocations), within what it leaves an owner that holds allocations there.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ...core.errors import Conflict, GswarmError, NotFound
from ...core.keylocks import KeyedLocks
from ...core.locations import LocationTable, is_memory_device
from ...core.names import DeviceRef, parse_device
from ...core.placement import Resident, free_bytes, plan_room
from ...core.tasks import Task
from ..runtime import memread, shmcopy
from ..runtime.cluster import ClusterRuntime
from ..runtime.executor import Cancelled, Job, TaskExecutor

log = logging.getLogger(__name__)

Notify = Callable[..., None]  # notify(key, change, **data): what the face tells its listeners
InUse = Callable[[str, str, str], bool]  # in_use(key, node, device): a user holds that copy


class SameHostWay(Protocol):
    """A module moving a copy between two workers of one host (`memread`, `shmcopy`)."""

    __name__: str

    def export_copy(self, read: Callable[..., Any], key: str, device: str,
                    token: str) -> dict[str, Any]: ...

    def import_copy(self, handoff: dict[str, Any], write: Callable[..., Any], key: str,
                    device: str, signal: Any, *args: Any) -> dict[str, Any]: ...

    def release_copy(self, token: str) -> bool: ...


class Reservations(Protocol):
    """What the room check needs of reservations (tenancy's allocations)."""

    def room(self, entry: str | None, node: str, device: str, available: int | None,
             owner: str | None = None) -> int | None:
        """Room for a copy of `entry` (placed by `owner`, when the entry does not say) on
        `node:device`, given the `available` bytes found otherwise (None: unknown)."""


@dataclass(frozen=True, slots=True)
class Payload:
    """What the engine needs to know of one kind of bytes."""

    noun: str  # "chunk", "model": in messages
    key_field: str  # "chunk_id", "model_name": in details and task params
    ready: str  # the status of a complete copy: "available", "ready"
    writing: frozenset[str]  # the statuses of a copy a task writes
    task_types: tuple[str, ...]  # the task types that write copies
    resource: str  # the task resources key that names entries: "chunks", "models"
    read: Callable[..., Any]  # worker op read(key, device) -> the copy's bytes
    drop: Callable[..., Any]  # worker op drop(key, device) -> whether bytes were there
    busy_types: tuple[str, ...] | None = None  # tasks that count as using an entry (None: all)


class CopyEngine:
    def __init__(
        self,
        payload: Payload,
        copies: LocationTable,
        exists: Callable[[str], bool],
        runtime: ClusterRuntime,
        executor: TaskExecutor,
        *,
        notify: Notify | None = None,
        in_use: InUse | None = None,
        reservations: Reservations | None = None,
    ) -> None:
        self.payload = payload
        self.reservations = reservations
        self._refused: set[tuple[str, str, str]] = set()  # (way, source, target worker address)
        self.copies = copies
        self.exists = exists
        self.runtime = runtime
        self.executor = executor
        self.notify: Notify = notify or (lambda key, change, **data: None)
        self.in_use: InUse = in_use or (lambda key, node, device: False)
        self.locks = KeyedLocks()  # one per entry

    # -- keeping the table true ---------------------------------------------------------------

    def recover(self) -> list[tuple[sqlite3.Row, Task | None]]:
        """After the queue restored its tasks: forget copies being written by tasks no longer
        running; answers them with their task (None if it is gone)."""
        queue = self.executor.queue
        forgotten = []
        for loc in self.copies.all():
            if loc["status"] not in self.payload.writing:
                continue
            task = queue.get(loc["task_id"]) if loc["task_id"] in queue else None
            if task is None or task.finished:
                self.copies.remove(loc[self.copies.key], loc["node"], loc["device"])
                forgotten.append((loc, task))
        return forgotten

    def forget_unfinished(self, task: Task) -> str | None:
        """A task of the payload that ended without completing leaves no copy being written
        (also one that never ran); answers its entry, if that still exists."""
        p = self.payload
        if task.task_type not in p.task_types or not task.finished or task.status == "completed":
            return None
        key = task.params.get(p.key_field)
        if not key or not self.exists(key):
            return None
        for loc in self.copies.of(key):
            if loc["task_id"] == task.task_id and loc["status"] in p.writing:
                self.copies.remove(key, loc["node"], loc["device"])
                self.notify(key, "location_removed", device=f"{loc['node']}:{loc['device']}",
                            reason=task.status)
        return key

    def reconcile(self) -> None:
        """Memory copies of a worker that is gone (dropped by the scheduler, or replaced by a new
        process under the same node) are lost."""
        nodes = {n.name: n for n in self.runtime.nodes.all()}
        for loc in self.copies.all():
            node = nodes.get(loc["node"])
            if (loc["status"] == self.payload.ready and is_memory_device(loc["device"])
                    and node is not None and loc["worker"]
                    and not node.may_hold_memory_of(loc["worker"])):
                key = loc[self.copies.key]
                self.copies.set_status(key, loc["node"], loc["device"], "lost")
                self.notify(key, "updated", device=f"{loc['node']}:{loc['device']}",
                            status="lost")

    # -- choosing -----------------------------------------------------------------------------

    def device(self, text: str, field: str) -> DeviceRef:
        """A qualified device of a known node that has it (unknown node or device: NOT_FOUND)."""
        ref = parse_device(text, self.runtime.nodes.names(), field)
        node = self.runtime.nodes.get(ref.node)
        if ref.device not in node.device_names:
            raise NotFound(f"node {ref.node} has no device {ref.device!r}",
                           {"field": field, "device": str(ref),
                            "devices": sorted(node.device_names)})
        return ref

    def ready_copies(self, key: str) -> list[sqlite3.Row]:
        return [r for r in self.copies.of(key) if r["status"] == self.payload.ready]

    def check_free_target(self, key: str, target: DeviceRef) -> sqlite3.Row | None:
        """`Conflict` if `target` holds a copy that is not lost; answers the lost one, if any."""
        loc = self.copies.get(key, target.node, target.device)
        if loc is not None and loc["status"] != "lost":
            raise Conflict(
                f"{self.payload.noun} {key} already has a copy on {target} ({loc['status']})",
                {self.payload.key_field: key, "device": str(target), "status": loc["status"]},
            )
        return loc

    def tasks_using(self, key: str) -> list[Task]:
        """Running and pending tasks that name the entry among their resources."""
        queue = self.executor.queue
        types = self.payload.busy_types
        return [t for t in [*queue.tasks("running"), *queue.tasks("pending")]
                if key in t.resources.get(self.payload.resource, []) and not t.finished
                and (types is None or t.task_type in types)]

    async def cancel(self, tasks: list[Task]) -> None:
        for task in tasks:
            with contextlib.suppress(GswarmError):
                await self.executor.cancel(task.task_id)

    # -- room -----------------------------------------------------------------------------------

    def check_room(self, target: DeviceRef, size: int | None, key: str | None = None,
                   owner: str | None = None) -> None:
        """`InsufficientMemory` unless `size` bytes of `key` (placed by `owner`, for a new
        entry) fit on `target` as the node reports it, reservations withheld."""
        if size is not None:
            plan_room(size, self.room(key, target, None, owner), [], evict=None,
                      device=str(target))

    async def make_room(self, key: str, target: DeviceRef, size: int, evict: bool,
                        capacity: int | None) -> None:
        """`InsufficientMemory` unless `size` bytes fit on `target` (within `capacity`, the bytes
        this payload may take there), after evicting least-recently-used copies kept elsewhere
        when `evict`.

        One victim at a time, under its entry's lock and checked again right before it goes; the
        plan is made again after each (on the room measured at the start plus what was freed),
        as evicting awaits and copies may have changed meanwhile."""
        available = self.room(key, target, capacity)
        freed = 0
        while True:
            room = None if available is None else available + freed
            victims = plan_room(size, room, self.residents(key, target) if evict else [],
                                evict=evict, device=str(target))
            if not victims:
                return
            victim = victims[0]
            async with self.locks(victim.model_name):
                loc = self.copies.get(victim.model_name, target.node, target.device)
                if loc is None or not self.evictable(loc):
                    continue  # it changed while we waited: plan again without it
                await self.remove_copy(victim.model_name, target.node, target.device,
                                       reason="evicted")
            freed += victim.size

    def room(self, key: str | None, target: DeviceRef, capacity: int | None,
             owner: str | None = None) -> int | None:
        """The bytes free for `key` on `target`: what the node reports, within `capacity` less
        what the other entries' copies take there, less what reservations withhold from it."""
        reported = self.runtime.nodes.get(target.node).devices.get(target.device, {})
        taken = sum(r.size for r in self.residents(key, target)) if capacity is not None else 0
        free = free_bytes(reported.get("available"), capacity, taken)
        if self.reservations is None:
            return free
        return self.reservations.room(key, target.node, target.device, free, owner)

    def residents(self, key: str | None, target: DeviceRef) -> list[Resident]:
        """The copies of other entries on `target`, as the placement policy sees them."""
        return [
            Resident(loc[self.copies.key], loc["size"] or 0, loc["last_used"],
                     evictable=self.evictable(loc))
            for loc in self.copies.on_device(target.node, target.device)
            if loc[self.copies.key] != key and loc["status"] != "lost"
        ] if self.copies.sized else []

    def evictable(self, loc: sqlite3.Row) -> bool:
        """Ready, unused, not in a task's way, and not the entry's last ready copy."""
        key = loc[self.copies.key]
        if loc["status"] != self.payload.ready or self.in_use(key, loc["node"], loc["device"]):
            return False
        where = f"{loc['node']}:{loc['device']}"
        if any(where in t.resources.get("devices", []) for t in self.tasks_using(key)):
            return False
        return not self.last_ready(loc)

    # -- removing -------------------------------------------------------------------------------

    def last_ready(self, loc: sqlite3.Row) -> bool:
        """Whether `loc` is a ready copy and its entry has no other."""
        return loc["status"] == self.payload.ready and not any(
            o["status"] == self.payload.ready
            and (o["node"], o["device"]) != (loc["node"], loc["device"])
            for o in self.copies.of(loc[self.copies.key])
        )

    async def remove_copy(self, key: str, node: str, device: str, reason: str) -> None:
        """Forget the copy and drop its bytes; never the last ready copy (`Conflict`): checked
        here with no await before the table forgets it."""
        loc = self.copies.get(key, node, device)
        if loc is None:
            return
        if self.last_ready(loc):
            raise Conflict(f"{node}:{device} holds the last copy of {self.payload.noun} {key}",
                           {self.payload.key_field: key, "device": f"{node}:{device}"})
        self.copies.remove(key, node, device)
        if loc["status"] != "lost":
            await self.drop_quietly(key, node, device)
        self.notify(key, "location_removed", device=f"{node}:{device}", reason=reason)

    async def drop_all(self, key: str) -> list[str]:
        """Drop the bytes of every copy of an entry being deleted; answers where they were."""
        removed = []
        for loc in self.copies.of(key):
            removed.append(f"{loc['node']}:{loc['device']}")
            if loc["status"] != "lost":
                await self.drop_quietly(key, loc["node"], loc["device"])
        return removed

    async def drop_quietly(self, key: str, node: str, device: str) -> None:
        """Best effort: remove a copy's bytes from its node (gone if the worker restarted)."""
        try:
            await self.runtime.run_on(node, self.payload.drop, key, device, timeout=10)
        except Exception as exc:
            log.warning("gswarm: could not drop %s %s from %s:%s: %s", self.payload.noun, key,
                        node, device, exc)

    async def forget_target(self, key: str, target: DeviceRef, job: Job,
                            drop: bool = False) -> None:
        """After a failed or cancelled write by `job`: no location, no bytes."""
        with contextlib.suppress(sqlite3.Error):
            loc = self.copies.get(key, target.node, target.device)
            if loc is not None and loc["task_id"] == job.task.task_id:
                self.copies.remove(key, target.node, target.device)
                self.notify(key, "location_removed", device=str(target), reason="failed")
                drop = True
        if drop:
            await self.drop_quietly(key, target.node, target.device)

    # -- writing --------------------------------------------------------------------------------

    async def run_write(self, job: Job, key: str, target: DeviceRef, op: Callable[..., Any],
                        *args: Any) -> dict[str, Any] | None:
        """Run the worker op that writes a copy on `target` (`op(*args)` answers what it stored,
        with its `worker`); None when the entry was deleted meanwhile (the bytes are dropped)."""
        try:
            stored = await job.wait(job.submit(op, *args, node=target.node))
        except BaseException:
            await self.forget_target(key, target, job)
            raise
        if not self.exists(key):  # deleted with force meanwhile
            await self.drop_quietly(key, target.node, target.device)
            return None
        return stored

    async def run_copy(self, job: Job, key: str, source: DeviceRef, target: DeviceRef,
                       write: Callable[..., Any], *write_args: Any, size: int | None = None,
                       keep_source: bool = True) -> dict[str, Any] | None:
        """Copy `source` to `target` worker to worker: `write(key, device, data, signal,
        *write_args)` on the target takes the bytes, read from the source's memory or through a
        shared-memory file when both workers share a host (`memread`, `shmcopy`), else the
        source's read future. The target is `copying`
        meanwhile, then ready; without `keep_source` the source goes after. None when the entry
        was deleted meanwhile."""
        self.copies.put(key, target.node, target.device, "copying", size=size,
                        task_id=job.task.task_id)
        stored = await self._same_host_copy(job, key, source, target, write, write_args)
        if stored is _MISSED:
            try:
                data = job.submit(self.payload.read, key, source.device, node=source.node)
            except BaseException:  # cancelled meanwhile
                await self.forget_target(key, target, job)
                raise
            stored = await self.run_write(job, key, target, write, key, target.device, data,
                                          job.signal, *write_args)
        if stored is None:
            return None
        self.copies.touch(key, source.node, source.device)
        self.copies.put(key, target.node, target.device, self.payload.ready, size=stored["size"],
                        worker=stored["worker"], task_id=job.task.task_id)
        self.notify(key, "location_added", device=str(target), status=self.payload.ready)
        if not keep_source:
            await self.remove_copy(key, source.node, source.device, reason="moved")
        return stored

    async def _same_host_copy(self, job: Job, key: str, source: DeviceRef, target: DeviceRef,
                              write: Callable[..., Any], write_args: tuple[Any, ...]) -> Any:
        """The copy without the Dask comm when source and target workers share a host: the
        target reads the source's memory (`memread`), else a /dev/shm file (`shmcopy`); what
        `run_write` answers, or `_MISSED` (other hosts, or both ways failed before the target
        had the bytes: nothing left behind, the comm path goes next). A way the kernel refused
        between two workers is not tried again between them."""
        nodes = self.runtime.nodes
        if source.node == target.node or not nodes.get(source.node).same_host(
                nodes.get(target.node)):
            return _MISSED
        pair = (nodes.get(source.node).address, nodes.get(target.node).address)
        for way in (memread, shmcopy):
            if (way.__name__, *pair) in self._refused:
                continue
            stored = await self._handoff_copy(way, job, key, source, target, write, write_args)
            if stored is _REFUSED:
                self._refused.add((way.__name__, *pair))
            elif stored is not _MISSED:
                return stored
        return _MISSED

    async def _handoff_copy(self, way: SameHostWay, job: Job, key: str, source: DeviceRef,
                            target: DeviceRef, write: Callable[..., Any],
                            write_args: tuple[Any, ...]) -> Any:
        """One same-host way (`way.export_copy` on the source, `way.import_copy` on the target,
        `way.release_copy` of the copy's token on the source whatever happens, so that nothing
        an export made outlives the copy): what `run_write` answers, or `_MISSED` (`_REFUSED`
        when the kernel refused it) before the target had the bytes."""
        noun, name = self.payload.noun, way.__name__.rsplit(".", 1)[-1]
        token = uuid.uuid4().hex
        try:
            try:
                handoff = await job.wait(job.submit(way.export_copy, self.payload.read, key,
                                                    source.device, token, node=source.node))
            except Exception as exc:
                if isinstance(exc, Cancelled) or job.cancel_requested:
                    await self.forget_target(key, target, job)
                    raise
                log.info("gswarm: %s %s: no %s copy (%s)", noun, key, name, exc)
                return _MISSED
            except BaseException:
                await self.forget_target(key, target, job)
                raise
            if "missed" in handoff:
                log.info("gswarm: %s %s: no %s copy (%s)", noun, key, name, handoff["missed"])
                return _MISSED
            stored = await self.run_write(job, key, target, way.import_copy, handoff, write,
                                          key, target.device, job.signal, *write_args)
            if stored is not None and "missed" in stored:
                log.info("gswarm: %s %s: %s copy missed (%s)", noun, key, name, stored["missed"])
                return _REFUSED if stored.get("refused") else _MISSED
            return stored
        finally:
            with contextlib.suppress(Exception):
                await self.runtime.run_on(source.node, way.release_copy, token, timeout=10)


_MISSED: Any = object()  # a same-host copy that did not happen (the next way goes)
_REFUSED: Any = object()  # one the kernel refused: not tried again between those two workers
