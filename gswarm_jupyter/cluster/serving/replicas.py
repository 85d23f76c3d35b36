"""A service's replicas: each a `ServiceActor` on its worker, its state, and the one way to call it.

A replica whose worker is lost (killed, restarted under a new address, or unreachable) is marked
`failed`. A service is `running` while every replica runs, `degraded` while some do, `loading`
while none does but some load (again), `failed` otherwise; `reason` says why replicas are down.
A call to a replica (`call`) never outlives its worker: it raises `ReplicaLost` once the
replica's node is gone (`runtime.watch`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from distributed import Future

from ...core.clock import iso
from ...core.errors import (
    GswarmError,
    InsufficientMemory,
    InternalError,
    InvalidRequest,
    NotFound,
    RequestTimeout,
    ResourceUnavailable,
)
from ...core.names import is_device
from ...core.nodes import NodeDirectory
from ...core.service_store import StoredReplica, StoredService
from ...core.serving_api import ServiceConfig
from ..runtime.watch import WatchTimeout, WorkerLost, moved, watch
from ..storage.engine import Reservations
from ..storage.weights import ModelSpec
from .channel import ReplicaChannel, channel_to

CONTROL_TIMEOUT = 30.0  # stats and stop calls


class ReplicaLost(Exception):
    """The replica's worker is gone or cannot be reached."""


@dataclass(eq=False)
class Replica:
    replica_id: str
    node: str
    device: str
    address: str
    status: str = "loading"  # loading | running | stopping | stopped | failed
    future: Future | None = None
    actor: Any = None
    channel: ReplicaChannel | None = None  # the gateway's direct line to the actor
    lane: dict[str, str] | None = None  # how to reach the actor's same-host lane (its `start`)
    inflight: int = 0
    memory_usage: int | None = None
    load_time: float | None = None
    error: str | None = None
    down_since: float | None = None  # set while it waits to be loaded again (restore, lost worker)
    attempts: int = 0  # failed tries to load it again since it went down
    next_try: float = 0.0  # monotonic time of the next try

    @property
    def live(self) -> bool:
        return self.status == "running"

    @property
    def waiting(self) -> bool:
        """Down, and to be loaded again by the keeper."""
        return self.down_since is not None and self.status in ("loading", "failed")

    def stored(self) -> StoredReplica:
        return StoredReplica(self.replica_id, self.node, self.device)

    def record(self) -> dict[str, Any]:
        return {
            "replica_id": self.replica_id,
            "node": self.node,
            "device": self.device,
            "status": self.status,
            "memory_usage": self.memory_usage,
            "load_time": self.load_time,
            "error": self.error,
            "active_requests": self.inflight,
        }


@dataclass(eq=False)
class Service:
    service_id: str
    model: ModelSpec
    config: ServiceConfig
    replicas: list[Replica]
    created_at: float = field(default_factory=time.time)
    stopping: bool = False
    number: int = 0  # the sequence number in its id
    nodes: list[str] | None = None  # the nodes its replicas may run on (None: any node)

    @property
    def status(self) -> str:
        states = {r.status for r in self.replicas}
        if self.stopping:
            return "stopping"
        if states == {"stopped"}:
            return "stopped"
        if any(r.status == "loading" and r.down_since is None for r in self.replicas):
            return "loading"  # its first load
        if states == {"running"}:
            return "running"
        if "running" in states:
            return "degraded"  # some replicas are down (and may be loading again)
        return "loading" if "loading" in states else "failed"

    @property
    def live_replicas(self) -> list[Replica]:
        return [] if self.stopping else [r for r in self.replicas if r.live]

    @property
    def memory_usage(self) -> int:
        return sum(r.memory_usage or 0 for r in self.replicas if r.live)

    @property
    def load_time(self) -> float | None:
        times = [r.load_time for r in self.replicas if r.load_time is not None]
        return max(times) if times else None

    @property
    def reason(self) -> str | None:
        """Why replicas are down (None while every replica runs or loads for the first time)."""
        errors = [f"{r.replica_id} on {r.node}:{r.device}: {r.error}"
                  for r in self.replicas if not r.live and r.error]
        return "; ".join(errors) or None

    def stored(self) -> StoredService:
        return StoredService(
            self.number, self.service_id, dataclasses.asdict(self.model), self.config.model_dump(),
            self.nodes, [r.stored() for r in self.replicas], self.created_at,
        )

    def record(self, url: str) -> dict[str, Any]:
        primary = self.replicas[0]
        return {
            "service_id": self.service_id,
            "model_name": self.model.name,
            "model_type": self.model.model_type,
            "node": primary.node,
            "device": primary.device,
            "status": self.status,
            "reason": self.reason,
            "url": url,
            "framework": self.config.framework,
            "replicas": [r.record() for r in self.replicas],
            "config": self.config.model_dump(),
            "memory_usage": self.memory_usage,
            "load_time": self.load_time,
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class Placement:
    node: str
    device: str


def place(
    directory: NodeDirectory,
    model: ModelSpec,
    nodes: list[str] | None,
    device: str | None,
    replicas: int | None,
    reservations: Reservations | None = None,
) -> list[Placement]:
    """Where each replica goes: round robin over `nodes` (or every online node); each device
    must have room for the model, less what `reservations` withhold there."""
    bare = device
    if device is not None and ":" in device:
        node, _, bare = device.rpartition(":")
        if nodes is not None and nodes != [node]:
            raise InvalidRequest(
                f"device {device!r} names node {node} but nodes lists {nodes}", {"field": "device"}
            )
        nodes = [node]
    if nodes is not None and not nodes:
        raise InvalidRequest("nodes: give at least one node", {"field": "nodes"})
    chosen = [directory.get(n) for n in nodes] if nodes else directory.online()[:1]
    if not chosen:
        raise ResourceUnavailable("no node is online")
    for node in chosen:
        if not node.online:
            raise ResourceUnavailable(f"node {node.name} is offline", {"node": node.name})
    count = replicas or len(chosen)
    placements = []
    for i in range(count):
        node = chosen[i % len(chosen)]
        dev = bare or ("gpu0" if "gpu0" in node.devices else "dram")
        if not is_device(dev) or dev == "disk":
            raise InvalidRequest(
                f"a model is served from dram, gpuN or vgpuN, not {dev!r}", {"field": "device"}
            )
        if dev not in node.devices:
            raise NotFound(f"node {node.name} has no device {dev}", {"device": f"{node.name}:{dev}"})
        placements.append(Placement(node.name, dev))
    _check_room(directory, model, placements, reservations)
    return placements


def _check_room(
    directory: NodeDirectory, model: ModelSpec, placements: list[Placement],
    reservations: Reservations | None = None,
) -> None:
    need: dict[tuple[str, str], int] = {}
    for p in placements:
        need[(p.node, p.device)] = need.get((p.node, p.device), 0) + model.size
    for (node, dev), required in need.items():
        available = directory.get(node).devices.get(dev, {}).get("available")
        if reservations is not None:  # others' allocations are no room; an owner has its own
            available = reservations.room(model.name, node, dev, available)
        if available is not None and required > available:
            raise InsufficientMemory(
                f"{node}:{dev} has {available} bytes free; {model.name} needs {required}",
                required=required, available=int(available), device=f"{node}:{dev}",
            )


def find_service(services: dict[str, Service], service_id: str) -> Service:
    """The service `service_id`, or `NotFound`."""
    try:
        return services[service_id]
    except KeyError:
        raise NotFound(f"unknown service {service_id!r}", {"service_id": service_id}) from None


async def call(
    nodes: NodeDirectory, replica: Replica, method: str, *args: Any, timeout: float | None
) -> Any:
    """`replica.actor.method(*args)`, watched (even reaching the actor may find it lost)."""

    async def invoke() -> Any:
        return await getattr(replica.actor, method)(*args)

    return await watched(nodes, replica, invoke(), timeout)


def channel_of(replica: Replica, batch_rows: int | None = None) -> ReplicaChannel:
    """The replica's direct channel, opened on first use (and again for a new actor); its
    messages hold at most `batch_rows` rows (the service's batch limit)."""
    channel = replica.channel
    if channel is None or channel.key != replica.actor.key or channel.address != replica.address:
        if channel is not None:
            channel.close()
        channel = replica.channel = channel_to(replica.actor, replica.address, batch_rows,
                                               replica.lane)
    return channel


async def watched(
    nodes: NodeDirectory, replica: Replica, pending: Awaitable[Any], timeout: float | None
) -> Any:
    """`pending`'s result; `ReplicaLost` when the replica's node goes away meanwhile,
    `RequestTimeout` after `timeout` seconds, worker errors as the API's errors."""
    try:
        return await watch(pending, lambda: gone(nodes, replica), timeout)
    except WorkerLost as exc:
        raise ReplicaLost(str(exc)) from None
    except WatchTimeout:
        raise RequestTimeout(
            f"no answer from {replica.replica_id} within {timeout:g} s",
            {"timeout": timeout, "replica_id": replica.replica_id},
        ) from None
    except GswarmError:
        raise
    except KeyError as exc:  # the actor is gone from its worker
        raise ReplicaLost(f"{type(exc).__name__}: {exc}") from None
    except Exception as exc:
        raise InternalError(
            f"replica {replica.replica_id} failed: {type(exc).__name__}: {exc}") from None


def gone(nodes: NodeDirectory, replica: Replica) -> str | None:
    """Why the replica's worker is gone (its node unknown, offline or moved), or None."""
    if not moved(nodes, replica.node, replica.address):
        return None
    return f"node {replica.node} ({replica.address}) is gone"


def release(replica: Replica) -> None:
    """Let go of the replica's actor (a dead worker's, or a half-loaded one)."""
    if replica.future is not None:
        with contextlib.suppress(Exception):
            replica.future.release()
    if replica.channel is not None:
        replica.channel.close()
    replica.future = replica.actor = replica.channel = replica.lane = None
