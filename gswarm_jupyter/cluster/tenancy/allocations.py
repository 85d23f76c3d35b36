"""Resource allocations: bytes (and compute units) reserved on one device for one owner until they
end, durable in SQLite (migration 85), enforced where copies and chunks are placed.

Invariants:
- the allocations on a device never hold more than its capacity nor more than it has free: a
  reservation is checked against both and booked (`ByteLedger.reserve`) under one lock, so
  concurrent requests cannot over-commit; the ledger holds exactly the allocations that exist
  (row and holding go together);
- the compute units of the allocations on a device never sum past what it offers (a virtual
  GPU its own units, a physical device 100): booked under the same lock, `409` past it;
- an allocation's unused bytes (its size less what its owner's copies and chunks take on that
  device now) are room nobody else gets (`room`); its owner's placements on that device count
  against it and are refused past it;
- an allocation ends by itself at `end_time` (`sweep`, run on the loop every `sweep_s`), or when
  freed; either way row, holding and an event (`listeners`) go together.

Owners are identities: `key:<key_id>` for an API key, else the `user_id` the server's owner gave.
Only a key's placements are known by owner (the key's ledger, `Placements`); an owner that is no
key has none counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ...core.clock import iso
from ...core.db import Database, migration
from ...core.errors import (
    Conflict,
    Forbidden,
    InsufficientMemory,
    InvalidRequest,
    NotFound,
    ResourceUnavailable,
)
from ...core.listeners import Listeners
from ...core.names import DeviceRef, parse_device
from ...core.nodes import Node, NodeDirectory
from .ledger import ByteLedger

log = logging.getLogger(__name__)

KEY_OWNER = "key:"

migration(
    85,
    """
    CREATE TABLE allocations (
        allocation_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        user_id TEXT NOT NULL,
        node TEXT NOT NULL,
        device TEXT NOT NULL,
        memory_size INTEGER NOT NULL CHECK (memory_size > 0),
        compute_units REAL NOT NULL,
        start_time REAL NOT NULL,
        end_time REAL NOT NULL
    )
    """,
)



class Placements(Protocol):
    """What allocations need to know of the bytes keys placed."""

    def owner_of(self, ref: str) -> str | None:
        """The key id that made the chunk or model `ref`, if any."""

    def bytes_on(self, key_id: str, node: str, device: str) -> int:
        """Bytes of the key's copies and chunks on `node:device` now."""


@dataclass(frozen=True, slots=True)
class Allocation:
    allocation_id: str
    owner: str
    user_id: str
    node: str
    device: str
    memory_size: int
    compute_units: float
    start_time: float
    end_time: float

    @property
    def where(self) -> str:
        return f"{self.node}:{self.device}"

    def record(self, used_bytes: int = 0) -> dict[str, Any]:
        return {
            "allocation_id": self.allocation_id,
            "user_id": self.user_id,
            "owner": self.owner,
            "gpu_id": self.where,
            "node": self.node,
            "device": self.device,
            "memory_size": self.memory_size,
            "compute_units": self.compute_units,
            "start_time": iso(self.start_time),
            "end_time": iso(self.end_time),
            "used_bytes": used_bytes,
        }


def device_capacity(node: Node, device: str) -> tuple[int | None, int | None]:
    """(total, available) bytes of a device as its node reports them; a virtual GPU the node
    lists without a measurement has its `memory_size` for both."""
    usage = node.devices.get(device)
    if usage is not None:
        return usage.get("total"), usage.get("available")
    for vgpu in node.report.get("vgpus", []):
        if (vgpu.get("device") or vgpu.get("virtual_gpu_id")) == device:
            size = vgpu.get("memory_size")
            free = vgpu.get("available", size)
            return (None if size is None else int(size)), (None if free is None else int(free))
    return None, None


# A physical device (a GPU; a node's CPU, behind `dram`) offers its whole compute as 100 units.
DEVICE_COMPUTE_UNITS = 100.0


def compute_capacity(node: Node, device: str) -> float:
    """Compute units a device offers to allocations: a virtual GPU's own, else the whole 100."""
    for vgpu in node.vgpus:
        if (vgpu.get("device") or vgpu.get("virtual_gpu_id")) == device:
            return float(vgpu.get("compute_units") or DEVICE_COMPUTE_UNITS)
    return DEVICE_COMPUTE_UNITS


class Allocations:
    """Every live allocation, in memory and in SQLite, booked in one `ByteLedger`; their
    compute units never sum past what their device offers."""

    def __init__(
        self,
        db: Database,
        nodes: NodeDirectory,
        placements: Placements,
        *,
        sweep_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.nodes = nodes
        self.placements = placements
        self.sweep_s = sweep_s
        self.clock = clock
        self.ledger = ByteLedger()  # holder: allocation id; device: node:device
        self.listeners: Listeners[dict[str, Any]] = Listeners("allocation event")
        self._live: dict[str, Allocation] = {}
        self._lock = threading.RLock()  # a reservation's checks and its booking, as one step
        self._sweeper: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def load(self) -> None:
        """After the migrations: the allocations of the last run that have not ended."""
        now = self.clock()
        for row in self.db.all("SELECT * FROM allocations ORDER BY start_time"):
            alloc = Allocation(**dict(row))
            if alloc.end_time <= now:
                self.db.execute("DELETE FROM allocations WHERE allocation_id = ?",
                                (alloc.allocation_id,))
                continue
            # Capacity is not measured yet: the ledger grows to what was booked, then to the
            # device's total once its node reports (`_capacity`).
            held = self.ledger.usage(alloc.where).used if self.ledger.has(alloc.where) else 0
            self.ledger.set_capacity(alloc.where, held + alloc.memory_size)
            self.ledger.reserve(alloc.where, alloc.allocation_id, alloc.memory_size)
            self._live[alloc.allocation_id] = alloc

    def start(self) -> None:
        self.load()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="gswarm-allocations")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_s)
            try:
                self.sweep()
            except Exception:  # the database closed under us at shutdown, or a bug: keep going
                log.exception("gswarm: allocation sweep failed")

    # -- reading --------------------------------------------------------------------------------

    def all(self, owner: str | None = None) -> list[Allocation]:
        live = sorted(self._live.values(), key=lambda a: (a.start_time, a.allocation_id))
        return [a for a in live if owner is None or a.owner == owner]

    def get(self, allocation_id: str, owner: str | None = None) -> Allocation:
        """One allocation; `owner` given: `Forbidden` unless it is theirs (the admin gives None)."""
        alloc = self._live.get(allocation_id)
        if alloc is None:
            raise NotFound(f"no allocation {allocation_id!r}", {"allocation_id": allocation_id})
        if owner is not None and alloc.owner != owner:
            raise Forbidden(
                f"allocation {allocation_id} belongs to another identity; freeing or reading "
                "others' allocations needs gswarm:admin",
                {"allocation_id": allocation_id, "required": ["gswarm:admin:write"]},
            )
        return alloc

    def used(self, alloc: Allocation) -> int:
        """Bytes its owner's copies and chunks take on its device now."""
        if not alloc.owner.startswith(KEY_OWNER):
            return 0
        return self.placements.bytes_on(alloc.owner[len(KEY_OWNER):], alloc.node, alloc.device)

    def record(self, alloc: Allocation) -> dict[str, Any]:
        return alloc.record(self.used(alloc))

    def records(self, owner: str) -> list[dict[str, Any]]:
        return [self.record(a) for a in self.all(owner)]

    def unused_bytes(self, owner: str) -> int:
        """Bytes the owner's allocations reserve that its own placements do not fill."""
        return sum(u for _, u in self._unused(self.all(owner)))

    def _unused(self, allocs: list[Allocation]) -> list[tuple[str, int]]:
        """(owner, unused bytes) per owner and device: an owner's placements fill its
        allocations on a device together."""
        by_owner: dict[tuple[str, str], list[Allocation]] = {}
        for a in allocs:
            by_owner.setdefault((a.owner, a.where), []).append(a)
        out = []
        for (owner, _), group in by_owner.items():
            reserved = sum(a.memory_size for a in group)
            out.append((owner, max(0, reserved - self.used(group[0]))))
        return out

    # -- enforcement: the room check's view ----------------------------------------------------

    def room(self, entry: str | None, node: str, device: str, available: int | None,
             owner: str | None = None) -> int | None:
        """Room for a copy of `entry` (a model name or chunk id; None: not made yet, placed by
        `owner`) on `node:device`, given the `available` bytes found otherwise (None: unknown):
        others' unused reservations are not room, and an owner with allocations there has only
        what they leave. An entry a key made is that key's, whoever places the copy."""
        here = [a for a in self._live.values() if a.node == node and a.device == device]
        if not here:
            return available
        key_id = self.placements.owner_of(entry) if entry is not None else None
        if key_id is not None:
            owner = KEY_OWNER + key_id
        withheld = sum(u for o, u in self._unused(here) if o != owner)
        room = None if available is None else available - withheld
        mine = [a for a in here if a.owner == owner]
        if mine:
            left = sum(a.memory_size for a in mine) - self.used(mine[0])
            room = left if room is None else min(room, left)
        return None if room is None else max(0, room)

    # -- writing --------------------------------------------------------------------------------

    def reserve(self, owner: str, user_id: str, memory_size: int, compute_units: float,
                duration: float, device: str | None) -> Allocation:
        """Reserve `memory_size` bytes on `device` (or the best device) for `duration` seconds;
        `InsufficientMemory` when it does not fit and nothing is booked."""
        with self._lock:
            return self._reserve(owner, user_id, memory_size, compute_units, duration, device)

    def _reserve(self, owner: str, user_id: str, memory_size: int, compute_units: float,
                 duration: float, device: str | None) -> Allocation:
        target = self._device(device) if device is not None else self._choose(memory_size)
        where = str(target)
        node = self.nodes.online_node(target.node)
        self._capacity(node, target.device)
        _, available = device_capacity(node, target.device)
        if available is not None:
            withheld = sum(u for _, u in self._unused(
                [a for a in self._live.values() if a.where == where]))
            free = available - withheld
            if memory_size > free:
                raise InsufficientMemory(
                    f"{where} has {max(0, free)} bytes free that no allocation holds; "
                    f"{memory_size} asked",
                    required=memory_size, available=max(0, free), device=where,
                )
        booked = sum(a.compute_units for a in self._live.values() if a.where == where)
        capacity = compute_capacity(node, target.device)
        if booked + compute_units > capacity:
            raise Conflict(
                f"{where} has {max(0.0, capacity - booked):g} of its {capacity:g} compute units "
                f"unreserved; {compute_units:g} asked",
                {"device": where, "capacity": capacity, "reserved": booked,
                 "required": compute_units},
            )
        now = self.clock()
        alloc = Allocation(f"alloc_{secrets.token_hex(8)}", owner, user_id, target.node,
                           target.device, memory_size, float(compute_units), now, now + duration)
        self.ledger.reserve(where, alloc.allocation_id, memory_size)  # the atomic check
        try:
            self.db.execute(
                "INSERT INTO allocations (allocation_id, owner, user_id, node, device, "
                "memory_size, compute_units, start_time, end_time) VALUES (?,?,?,?,?,?,?,?,?)",
                (alloc.allocation_id, owner, user_id, alloc.node, alloc.device, memory_size,
                 alloc.compute_units, alloc.start_time, alloc.end_time),
            )
        except BaseException:
            self.ledger.release(where, alloc.allocation_id)
            raise
        self._live[alloc.allocation_id] = alloc
        self._emit(alloc, "created")
        return alloc

    def free(self, allocation_id: str, owner: str | None = None) -> Allocation:
        """Free one (`owner` given: only theirs)."""
        alloc = self.get(allocation_id, owner)
        self._drop(alloc, "freed")
        return alloc

    def sweep(self) -> list[Allocation]:
        """Free every allocation that has ended; answers them."""
        now = self.clock()
        ended = [a for a in list(self._live.values()) if a.end_time <= now]
        for alloc in ended:
            self._drop(alloc, "expired")
        return ended

    def _drop(self, alloc: Allocation, change: str) -> None:
        with self._lock:
            if self._live.pop(alloc.allocation_id, None) is None:
                return
            self.db.execute("DELETE FROM allocations WHERE allocation_id = ?",
                            (alloc.allocation_id,))
            self.ledger.release(alloc.where, alloc.allocation_id)
        self._emit(alloc, change)

    def _emit(self, alloc: Allocation, change: str) -> None:
        event = {**alloc.record(), "change": change}
        self.listeners.emit(event)  # a broken stream does not break allocations

    # -- choosing a device -----------------------------------------------------------------------

    def _device(self, text: str) -> DeviceRef:
        ref = parse_device(text, self.nodes.names(), "device")
        node = self.nodes.get(ref.node)
        if ref.device not in node.device_names:
            raise NotFound(f"node {ref.node} has no device {ref.device!r}",
                           {"field": "device", "device": str(ref),
                            "devices": sorted(node.device_names)})
        if ref.device == "disk":
            raise InvalidRequest(
                f"{ref} is storage, not memory: allocations reserve a GPU, a vGPU or dram",
                {"field": "device", "device": str(ref)},
            )
        return ref

    def _capacity(self, node: Node, device: str) -> int:
        """Bring the ledger's capacity of a device to its reported total (never below what is
        held); answers it."""
        where = f"{node.name}:{device}"
        total, _ = device_capacity(node, device)
        held = self.ledger.usage(where).used if self.ledger.has(where) else 0
        capacity = max(held, total if total is not None else held)
        self.ledger.set_capacity(where, capacity)
        return capacity

    def _free_on(self, node: Node, device: str) -> int:
        where = f"{node.name}:{device}"
        capacity = self._capacity(node, device)
        _, available = device_capacity(node, device)
        booked = capacity - self.ledger.usage(where).available
        withheld = sum(u for _, u in self._unused(
            [a for a in self._live.values() if a.where == where]))
        free = capacity - booked
        if available is not None:
            free = min(free, available - withheld)
        return free

    def _choose(self, size: int) -> DeviceRef:
        """The least loaded GPU that fits, else a vGPU, else the dram with most room."""
        online = self.nodes.online()
        if not online:
            raise ResourceUnavailable("no node is online", {})
        for kind in ("gpu", "vgpu", "dram"):
            fits = []
            for node in online:
                for device in sorted(node.device_names):
                    if device.rstrip("0123456789") != kind:
                        continue
                    total, _ = device_capacity(node, device)
                    free = self._free_on(node, device)
                    if free >= size:
                        load = 1 - free / total if total else 1.0
                        fits.append((load, -free, node.name, device))
            if fits:
                _, _, name, device = min(fits)
                return DeviceRef(name, device)
        raise InsufficientMemory(
            f"no GPU, vGPU or dram has {size} bytes free that no allocation holds",
            required=size, available=max((self._free_on(n, "dram") for n in online
                                          if "dram" in n.device_names), default=0),
            device="any",
        )
