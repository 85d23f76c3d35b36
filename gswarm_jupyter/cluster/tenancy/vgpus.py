"""Virtual GPUs: a `vgpuN` device of a node with a hard memory quota and a compute-unit share,
carved from a physical GPU (`backing: cuda`) or, on a node without one, from host memory
(`backing: cpu`). Durable in SQLite (migration 90).

Invariants:
- a vGPU's bytes in use are what the location tables hold on it (model copies, also while being
  written, and data chunks; lost copies not), booked per holder in one `ByteLedger` (one lock,
  never negative, never past `memory_size`); the node shows the device with `total` =
  `memory_size`, `available` = what is left, so every placement's room check (copy engine,
  uploads, service placement) refuses past the quota with `507 INSUFFICIENT_MEMORY`;
- what a vGPU carved and does not use yet is taken off its physical device's `available`
  (host-backed: the node's `dram`), so nobody else takes it; a new vGPU must fit in what the
  physical device has free now;
- a vGPU goes only when nothing sits on it (services, model copies, chunks), or with `force`,
  which removes them first and loses no last copy (`409` names it; nothing is removed then);
- its node's worker maps `vgpuN` onto the device it was carved from (`backends.devices.
  bind_virtual`): told when it is made, again whenever the node comes (back) online, and told
  to forget it when it goes.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ...backends.devices import bind_virtual, unbind_virtual
from ...core.chunks import ChunkRegistry
from ...core.clock import iso
from ...core.db import Database, migration
from ...core.errors import Conflict, GswarmError, InsufficientMemory, InvalidRequest, NotFound
from ...core.modelregistry import ModelRegistry
from ...core.nodes import Node, NodeChange, NodeDirectory, VirtualDevices
from ...core.pagination import paginate
from ...core.vgpu_api import VgpuCreate, VgpuQuery
from ..runtime.cluster import ClusterRuntime
from .ledger import ByteLedger

log = logging.getLogger(__name__)

migration(
    90,
    """
    CREATE TABLE vgpus (
        virtual_gpu_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        node TEXT NOT NULL,
        device TEXT NOT NULL,
        physical_device TEXT NOT NULL,
        backing TEXT NOT NULL CHECK (backing IN ('cuda', 'cpu')),
        memory_size INTEGER NOT NULL CHECK (memory_size > 0),
        compute_units INTEGER NOT NULL CHECK (compute_units > 0),
        scheduling_policy TEXT NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (node, device)
    )
    """,
)

_VGPU = re.compile(r"vgpu([0-9]+)")


@dataclass(frozen=True, slots=True)
class Vgpu:
    virtual_gpu_id: str
    owner: str
    node: str
    device: str  # vgpuN
    physical_device: str  # gpuN (cuda) or dram (cpu)
    backing: str
    memory_size: int
    compute_units: int
    scheduling_policy: str
    created_at: float

    @property
    def where(self) -> str:
        return f"{self.node}:{self.device}"

    @property
    def weight(self) -> int:
        """Its weight in the fair queue of its physical device."""
        return self.compute_units if self.scheduling_policy == "weighted" else 1

    def share(self) -> dict[str, Any]:
        """What the worker needs to run batches and bound memory on it."""
        return {
            "virtual_gpu_id": self.virtual_gpu_id,
            "group": f"{self.node}:{self.physical_device}",
            "weight": self.weight,
            "backing": self.backing,
            "physical_device": self.physical_device,
            "memory_size": self.memory_size,
        }

    def record(self, used: int) -> dict[str, Any]:
        return {
            "virtual_gpu_id": self.virtual_gpu_id,
            "node": self.node,
            "device": self.device,
            "physical_gpu_id": f"{self.node}:{self.physical_device}",
            "backing": self.backing,
            "memory_size": self.memory_size,
            "memory_used": used,
            "memory_available": max(0, self.memory_size - used),
            "compute_units": self.compute_units,
            "scheduling_policy": self.scheduling_policy,
            "status": "active",
            "owner": self.owner,
            "created_at": iso(self.created_at),
        }


class Placed(Protocol):
    def on(self, node: str, device: str) -> dict[str, int]:
        """Holder (`model:<name>`, `chunk:<id>`) -> bytes it takes on `node:device` now."""


class TablePlacements:
    """What the location tables hold on a device: model copies (sized) and chunks (by size)."""

    def __init__(self, models: ModelRegistry, chunks: ChunkRegistry) -> None:
        self.models = models
        self.chunks = chunks

    def on(self, node: str, device: str) -> dict[str, int]:
        held: dict[str, int] = {}
        for loc in self.models.copies.on_device(node, device):
            if loc["status"] != "lost":
                held[f"model:{loc['name']}"] = int(loc["size"] or 0)
        for loc in self.chunks.copies.on_device(node, device):
            if loc["status"] != "lost" and self.chunks.exists(loc["chunk_id"]):
                held[f"chunk:{loc['chunk_id']}"] = int(self.chunks.row(loc["chunk_id"])["size"])
        return held


class VgpuBook:
    """Every vGPU, in memory and in SQLite, with its bytes booked in one `ByteLedger`."""

    def __init__(self, db: Database, placed: Placed) -> None:
        self.db = db
        self.placed = placed
        self.ledger = ByteLedger()  # device: node:vgpuN; holder: model:<name> / chunk:<id>
        self._live: dict[str, Vgpu] = {}

    def load(self) -> None:
        """After the migrations: the vGPUs of the last run."""
        for row in self.db.all("SELECT * FROM vgpus ORDER BY created_at"):
            self._keep(Vgpu(**dict(row)))

    # -- reading --------------------------------------------------------------------------------

    def all(self, node: str | None = None) -> list[Vgpu]:
        return [v for v in sorted(self._live.values(), key=lambda v: (v.created_at, v.node))
                if node in (None, v.node)]

    def get(self, virtual_gpu_id: str) -> Vgpu:
        try:
            return self._live[virtual_gpu_id]
        except KeyError:
            raise NotFound(f"no virtual GPU {virtual_gpu_id!r}",
                           {"virtual_gpu_id": virtual_gpu_id}) from None

    def at(self, node: str, device: str) -> Vgpu | None:
        return next((v for v in self._live.values() if (v.node, v.device) == (node, device)), None)

    def used(self, vgpu: Vgpu) -> int:
        """Bytes on it now, the ledger brought in line with the location tables first."""
        self._settle(vgpu)
        return self.ledger.usage(vgpu.where).used

    def record(self, vgpu: Vgpu) -> dict[str, Any]:
        return vgpu.record(self.used(vgpu))

    def of_node(self, node: str) -> VirtualDevices:
        """The node's vGPUs as its devices, and what they carved of its physical devices."""
        records, usage, carved = [], {}, {}
        for vgpu in self.all(node):
            used = self.used(vgpu)
            records.append({**vgpu.record(used), **vgpu.share()})
            usage[vgpu.device] = {"total": vgpu.memory_size, "used": used,
                                  "available": max(0, vgpu.memory_size - used)}
            unused = max(0, vgpu.memory_size - used)
            carved[vgpu.physical_device] = carved.get(vgpu.physical_device, 0) + unused
        return VirtualDevices(records, usage, carved)

    # -- changing -------------------------------------------------------------------------------

    def add(self, vgpu: Vgpu) -> None:
        if vgpu.virtual_gpu_id in self._live:
            raise Conflict(f"virtual GPU {vgpu.virtual_gpu_id!r} already exists",
                           {"virtual_gpu_id": vgpu.virtual_gpu_id})
        self.db.execute(
            "INSERT INTO vgpus VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (vgpu.virtual_gpu_id, vgpu.owner, vgpu.node, vgpu.device, vgpu.physical_device,
             vgpu.backing, vgpu.memory_size, vgpu.compute_units, vgpu.scheduling_policy,
             vgpu.created_at),
        )
        self._keep(vgpu)

    def remove(self, virtual_gpu_id: str) -> None:
        vgpu = self.get(virtual_gpu_id)
        self.db.execute("DELETE FROM vgpus WHERE virtual_gpu_id = ?", (virtual_gpu_id,))
        del self._live[virtual_gpu_id]
        self.ledger.remove_device(vgpu.where)

    def next_device(self, node: str) -> str:
        """The lowest `vgpuN` the node does not have."""
        taken = {int(m.group(1)) for v in self.all(node) if (m := _VGPU.fullmatch(v.device))}
        return f"vgpu{next(i for i in range(len(taken) + 1) if i not in taken)}"

    def _keep(self, vgpu: Vgpu) -> None:
        self._live[vgpu.virtual_gpu_id] = vgpu
        self.ledger.set_capacity(vgpu.where, vgpu.memory_size)

    def _settle(self, vgpu: Vgpu) -> None:
        """Book exactly what the location tables hold on the vGPU: holders gone are freed."""
        placed = self.placed.on(vgpu.node, vgpu.device)
        booked = self.ledger.usage(vgpu.where).holders
        for holder, size in booked.items():
            if placed.get(holder, 0) < size:
                self.ledger.release(vgpu.where, holder, size - placed.get(holder, 0))
        for holder, size in placed.items():
            more = size - booked.get(holder, 0)
            if more > 0:
                try:
                    self.ledger.reserve(vgpu.where, holder, more)
                except InsufficientMemory:  # placed past the quota by hand: show it full
                    log.warning("gswarm: %s holds more than its quota of %d bytes", vgpu.where,
                                vgpu.memory_size)
                    free = self.ledger.usage(vgpu.where).available
                    self.ledger.reserve(vgpu.where, holder, free)


class Occupants(Protocol):
    """What deleting a vGPU needs of storage and serving."""

    def on_device(self, node: str, device: str) -> dict[str, list[str]]:
        """What sits on it: `services`, `models`, `chunks` (ids), and `last_copies` among them."""

    def clear(self, node: str, device: str) -> Awaitable[dict[str, list[str]]]:
        """Stop its services, drop its copies; answers what went."""


class Bindings(Protocol):
    """Telling a node's worker which device its `vgpuN` is."""

    async def bind(self, vgpu: Vgpu) -> None: ...

    async def unbind(self, vgpu: Vgpu) -> None: ...

    def watch(self, on_node: Callable[[NodeChange], None]) -> None:
        """Call `on_node` on every node status change."""


class WorkerBindings:
    """`Bindings` through the Dask client: `bind_virtual` run on the node's worker."""

    TIMEOUT = 30.0

    def __init__(self, runtime: ClusterRuntime) -> None:
        self.runtime = runtime

    async def bind(self, vgpu: Vgpu) -> None:
        await self.runtime.run_on(vgpu.node, bind_virtual, vgpu.device, vgpu.physical_device,
                                  timeout=self.TIMEOUT)

    async def unbind(self, vgpu: Vgpu) -> None:
        await self.runtime.run_on(vgpu.node, unbind_virtual, vgpu.device, timeout=self.TIMEOUT)

    def watch(self, on_node: Callable[[NodeChange], None]) -> None:
        self.runtime.listeners.add(on_node)


class VirtualGpus:
    """Create, read and destroy vGPUs over the book and the live nodes."""

    def __init__(self, book: VgpuBook, nodes: NodeDirectory, occupants: Occupants,
                 bindings: Bindings, clock: Any = time.time) -> None:
        self.book = book
        self.nodes = nodes
        self.occupants = occupants
        self.bindings = bindings
        self.clock = clock
        self._binding: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Before the runtime starts: every node that comes online learns its vGPUs."""
        self.bindings.watch(self.on_node)

    def on_node(self, change: NodeChange) -> None:
        """A node (back) online: its worker (maybe a new process) learns its vGPUs again."""
        if change.status == "online" and self.book.all(change.node):
            task = asyncio.ensure_future(self._bind_node(change.node))
            self._binding.add(task)
            task.add_done_callback(self._binding.discard)

    async def _bind_node(self, node: str) -> None:
        for vgpu in self.book.all(node):
            try:
                await self.bindings.bind(vgpu)
            except GswarmError as exc:  # the node went again: its next coming back binds
                log.warning("gswarm: could not bind %s on %s: %s", vgpu.device, node, exc)

    async def create(self, req: VgpuCreate, owner: str) -> dict[str, Any]:
        """Book it, then tell its worker; a worker that cannot be told undoes the booking."""
        vgpu = self._carve(req, owner)
        self.book.add(vgpu)
        try:
            await self.bindings.bind(vgpu)
        except BaseException:
            self.book.remove(vgpu.virtual_gpu_id)
            raise
        return self.book.record(vgpu)

    def _carve(self, req: VgpuCreate, owner: str) -> Vgpu:
        node = self._node(req)
        physical, backing = self._physical(node, req.physical_device)
        free = node.devices.get(physical, {}).get("available")
        if free is None or req.memory_size > free:
            raise InsufficientMemory(
                f"{node.name}:{physical} has {free} bytes free; the virtual GPU asks "
                f"{req.memory_size}", required=req.memory_size, available=int(free or 0),
                device=f"{node.name}:{physical}")
        if req.virtual_gpu_id in {v.virtual_gpu_id for v in self.book.all()}:
            raise Conflict(f"virtual GPU {req.virtual_gpu_id!r} already exists",
                           {"virtual_gpu_id": req.virtual_gpu_id})
        return Vgpu(req.virtual_gpu_id, owner, node.name, self.book.next_device(node.name),
                    physical, backing, req.memory_size, req.compute_units,
                    req.scheduling_policy, self.clock())

    def list(self, query: VgpuQuery) -> dict[str, Any]:
        if query.node is not None:
            self.nodes.get(query.node)
        records = [self.book.record(v) for v in self.book.all(query.node)]
        return paginate(records, query, "vgpus")

    def get(self, virtual_gpu_id: str) -> dict[str, Any]:
        return self.book.record(self.book.get(virtual_gpu_id))

    async def delete(self, virtual_gpu_id: str, force: bool = False) -> dict[str, Any]:
        vgpu = self.book.get(virtual_gpu_id)
        held = self.occupants.on_device(vgpu.node, vgpu.device)
        last = held.pop("last_copies", [])
        if any(held.values()) and not force:
            raise Conflict(
                f"virtual GPU {virtual_gpu_id} is in use; delete it with force=true",
                {"virtual_gpu_id": virtual_gpu_id, **held},
            )
        if last:
            raise Conflict(
                f"virtual GPU {virtual_gpu_id} holds the last copy of {', '.join(last)}; move "
                "or delete them first", {"virtual_gpu_id": virtual_gpu_id, "last_copies": last},
            )
        removed = await self.occupants.clear(vgpu.node, vgpu.device) if any(held.values()) else {
            "services": [], "models": [], "chunks": []}
        self.book.remove(virtual_gpu_id)
        try:
            await self.bindings.unbind(vgpu)
        except GswarmError as exc:  # gone with its worker, or offline: nothing left to forget
            log.warning("gswarm: could not unbind %s on %s: %s", vgpu.device, vgpu.node, exc)
        return {"virtual_gpu_id": virtual_gpu_id, "deleted": True, "removed": removed}

    def _node(self, req: VgpuCreate) -> Node:
        if req.node is not None:
            return self.nodes.online_node(req.node)
        online = self.nodes.online()
        if not online:
            raise NotFound("no node is online to carve a virtual GPU on", {"field": "node"})

        def free(node: Node) -> int:
            dev = "gpu0" if "gpu0" in node.devices else "dram"
            return int(node.devices.get(dev, {}).get("available") or 0)

        return max(online, key=free)

    @staticmethod
    def _physical(node: Node, asked: str | None) -> tuple[str, str]:
        """(physical device, backing): a named GPU, else the node's first GPU, else its dram."""
        gpus = sorted(d for d in node.devices if re.fullmatch(r"gpu[0-9]+", d))
        if asked == "dram" or (asked is None and not gpus):
            return "dram", "cpu"
        if asked is None:
            return gpus[0], "cuda"
        if not re.fullmatch(r"gpu[0-9]+", asked):
            raise InvalidRequest(f"physical_device {asked!r}: expected gpuN or dram",
                                 {"field": "physical_device"})
        if asked not in gpus:
            raise NotFound(f"node {node.name} has no device {asked}",
                           {"field": "physical_device", "device": f"{node.name}:{asked}"})
        return asked, "cuda"
