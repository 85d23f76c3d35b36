"""The cluster's nodes as the API shows them, kept true by heartbeat observations.

Pure: the cluster package feeds it what the Dask scheduler saw; it decides what is online.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .clock import iso_or_none
from .errors import NotFound, ResourceUnavailable


@dataclass(frozen=True, slots=True)
class WorkerSeen:
    """One worker in one scheduler snapshot. `report` is the node agent's, if it has reported yet."""

    name: str
    address: str
    host: str
    last_seen: float
    memory_limit: int | None = None
    report: dict[str, Any] | None = None
    threads: int = 0  # the worker's threads (Dask's nthreads)


@dataclass(frozen=True, slots=True)
class VirtualDevices:
    """A node's virtual GPUs as the server books them: their records, their usage as devices,
    and the bytes they carved and do not use yet from each physical device (`dram`, `gpuN`)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, dict[str, int | None]] = field(default_factory=dict)
    carved: dict[str, int] = field(default_factory=dict)


VirtualOf = Callable[[str], VirtualDevices]


def no_virtual(node: str) -> VirtualDevices:
    return VirtualDevices()


@dataclass(slots=True)
class Node:
    name: str
    address: str
    host: str
    last_seen: float
    online: bool = True
    report: dict[str, Any] = field(default_factory=dict)
    # The scheduler no longer lists the worker at `address`: that process, and whatever it held
    # in memory, is gone (offline for a late heartbeat alone, it may still be there).
    gone: bool = False
    threads: int = 0  # the worker's threads, as the scheduler last reported them
    # The server's virtual GPUs on this node, asked each time (their usage changes with copies).
    virtual: VirtualOf = no_virtual

    @property
    def devices(self) -> dict[str, dict[str, int | None]]:
        """Measured devices (less what virtual GPUs carved of them and do not use) and the
        virtual GPUs, each with total/used/available bytes."""
        devices = dict(self.report.get("devices", {}))
        virtual = self.virtual(self.name)
        for name, carved in virtual.carved.items():
            usage = devices.get(name)
            if usage is not None and carved:
                used, free = usage.get("used"), usage.get("available")
                devices[name] = {
                    **usage,
                    "used": None if used is None else used + carved,
                    "available": None if free is None else max(0, free - carved),
                }
        devices.update(virtual.usage)
        return devices

    @property
    def vgpus(self) -> list[dict[str, Any]]:
        """Virtual GPUs the node agent reports and those the server carved here."""
        return [*self.report.get("vgpus", []), *self.virtual(self.name).records]

    @property
    def device_names(self) -> set[str]:
        """Every device a copy may be placed on: measured devices and virtual GPUs."""
        names = set(self.devices)
        for vgpu in self.vgpus:
            name = vgpu.get("device") or vgpu.get("virtual_gpu_id")
            if name:
                names.add(str(name))
        return names

    def may_hold_memory_of(self, worker: str) -> bool:
        """Whether what the worker at address `worker` put in memory may still be here: not once
        the scheduler dropped that worker, nor once another process serves this node."""
        return not self.gone and (not self.online or self.address == worker)

    def same_host(self, other: Node) -> bool:
        """Whether both workers run on one host in this boot: the same address host, hostname
        and boot id as their agents report them (unknown: not the same)."""
        mine, theirs = self.report.get("boot_id"), other.report.get("boot_id")
        return (bool(mine) and mine == theirs and bool(self.host) and self.host == other.host
                and self.report.get("hostname") == other.report.get("hostname"))

    def summary(self) -> dict[str, Any]:
        """The `GET /nodes` row."""
        return {
            "node_id": self.name,
            "hostname": self.report.get("hostname"),
            "ip_address": self.host or None,
            "address": self.address,
            "status": "online" if self.online else "offline",
            "last_heartbeat": iso_or_none(self.last_seen),
            "capabilities": {
                "gpus": list(self.report.get("gpus", [])),
                "vgpus": self.vgpus,
                "storage": {dev: usage.get("total") for dev, usage in self.devices.items()},
            },
        }

    def detail(self) -> dict[str, Any]:
        """The `GET /nodes/{node}` record: the summary with each device's total/used/available."""
        return {**self.summary(), "devices": self.devices, "store": self.report.get("store")}

    def resources(self) -> dict[str, Any]:
        """The `GET /nodes/{node}/resources` record."""
        compute: dict[str, Any] = {"cpu": self.report.get("cpu", {"cores": None, "usage": None})}
        for gpu in self.report.get("gpus", []):
            compute[gpu["device"]] = {
                "usage": gpu.get("usage"),
                "temperature": gpu.get("temperature"),
            }
        return {"node_id": self.name, "storage": self.devices, "compute": compute}


@dataclass(frozen=True, slots=True)
class NodeChange:
    node: str
    status: str  # "online" | "offline"


class NodeDirectory:
    """Every node ever seen, online while the scheduler reports it with a fresh heartbeat."""

    def __init__(self, stale_after: float = 10.0, virtual: VirtualOf = no_virtual) -> None:
        self.stale_after = stale_after
        self.virtual = virtual
        self._nodes: dict[str, Node] = {}

    def observe(self, seen: list[WorkerSeen], now: float) -> list[NodeChange]:
        """Apply one scheduler snapshot taken at `now`; answer the nodes whose status changed."""
        changes: list[NodeChange] = []
        present = set()
        for worker in seen:
            present.add(worker.name)
            online = now - worker.last_seen <= self.stale_after
            node = self._nodes.get(worker.name)
            if node is None:
                node = self._nodes[worker.name] = Node(
                    worker.name, worker.address, worker.host, worker.last_seen, online=not online,
                    virtual=self.virtual,
                )
            node.address, node.host, node.last_seen = worker.address, worker.host, worker.last_seen
            node.gone = False
            node.threads = worker.threads
            if worker.report is not None:
                node.report = worker.report
            if node.online != online:
                node.online = online
                changes.append(NodeChange(worker.name, "online" if online else "offline"))
        for name, node in self._nodes.items():
            if name not in present:
                node.gone = True
                if node.online:
                    node.online = False
                    changes.append(NodeChange(name, "offline"))
        return changes

    def mark_all_offline(self) -> list[NodeChange]:
        """The scheduler itself is gone: nothing can be known to be online (nor to be gone)."""
        changes = []
        for node in self._nodes.values():
            if node.online:
                node.online = False
                changes.append(NodeChange(node.name, "offline"))
        return changes

    def all(self) -> list[Node]:
        return sorted(self._nodes.values(), key=lambda n: _natural_key(n.name))

    def online(self) -> list[Node]:
        return [n for n in self.all() if n.online]

    def threads(self) -> int:
        """The worker threads of the online nodes, together."""
        return sum(n.threads for n in self._nodes.values() if n.online)

    def get(self, name: str) -> Node:
        try:
            return self._nodes[name]
        except KeyError:
            raise NotFound(f"unknown node {name!r}", {"node": name}) from None

    def online_node(self, name: str) -> Node:
        """A node work can go to now: unknown is `NotFound`, offline `ResourceUnavailable`."""
        node = self.get(name)
        if not node.online:
            raise ResourceUnavailable(f"node {name} is offline", {"node": name})
        return node

    def names(self) -> list[str]:
        return [n.name for n in self.all()]


def _natural_key(name: str) -> tuple[str, int, str]:
    """`node2` before `node10`."""
    stem = name.rstrip("0123456789")
    digits = name[len(stem) :]
    return (stem, int(digits) if digits else -1, name)
