"""Services: a model loaded by a backend on devices of nodes, each copy (replica) a `ServiceActor`
on its worker, and the gateway that spreads requests over live replicas.

A replica whose worker is lost (killed, restarted under a new address, or unreachable) is marked
`failed`; the request is retried on another live replica of the model, and later requests go to
live replicas only. A service is `running` while every replica runs, `degraded` while some do,
`loading` while none does but some load (again), `failed` otherwise; `reason` says why replicas
are down.

Every started service is stored (`ServiceStore`) until it is stopped: a server shutdown keeps it,
and `restore` brings it back as `loading` replicas that `ServiceKeeper` loads again, as it does
for replicas whose worker died (`restart_replica`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from distributed import Future

from ...core.aio import cancel_and_wait
from ...core.balancing import Balancer
from ...core.clock import iso
from ...core.errors import (
    GswarmError,
    InsufficientMemory,
    InternalError,
    InvalidRequest,
    ModelNotFound,
    NetworkError,
    NotFound,
    RequestTimeout,
    ResourceUnavailable,
)
from ...core.names import is_device
from ...core.recovery import retry_delay
from ...core.service_store import ServiceStore, StoredReplica, StoredService
from ...core.serving_api import ServiceConfig
from ...core.stats import percentile
from ..runtime.cluster import ClusterRuntime
from ..runtime.signals import WorkerOpError, api_error
from ..storage.weights import ModelSpec, WeightSource
from .actor import ServiceActor

log = logging.getLogger(__name__)

WATCH_INTERVAL = 0.25  # how often a waiting call checks that its replica's node is still there
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


class ServiceManager:
    """Every service of the cluster, and the gateway over their replicas."""

    def __init__(
        self, runtime: ClusterRuntime, weights: WeightSource, store: ServiceStore, url: str = ""
    ) -> None:
        self.runtime = runtime
        self.weights = weights
        self.store = store
        self.url = url  # the compute-plane address that reaches services
        self.services: dict[str, Service] = {}
        self._balancers: dict[str, Balancer] = {}
        self._ids = itertools.count(1)  # `restore` moves it past every stored number
        self._restarts: dict[str, asyncio.Task[None]] = {}  # replica id -> its reload

    # -- reading ------------------------------------------------------------------------------

    def get(self, service_id: str) -> Service:
        try:
            return self.services[service_id]
        except KeyError:
            raise NotFound(f"unknown service {service_id!r}", {"service_id": service_id}) from None

    def list(self, model_name: str | None = None) -> list[Service]:
        return [s for s in self.services.values() if model_name in (None, s.model.name)]

    def serving(self, model_name: str) -> list[Service]:
        """The model's services that are not stopping, stopped or failed."""
        return [s for s in self.list(model_name) if s.status in ("loading", "running", "degraded")]

    def record(self, service: Service) -> dict[str, Any]:
        return service.record(self.url)

    # -- starting -----------------------------------------------------------------------------

    def place(
        self, model: ModelSpec, nodes: list[str] | None, device: str | None, replicas: int | None
    ) -> list[Placement]:
        """Where each replica goes: round robin over `nodes` (or every online node)."""
        directory = self.runtime.nodes
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
        self._check_room(model, placements)
        return placements

    def _check_room(self, model: ModelSpec, placements: list[Placement]) -> None:
        need: dict[tuple[str, str], int] = {}
        for p in placements:
            need[(p.node, p.device)] = need.get((p.node, p.device), 0) + model.size
        for (node, dev), required in need.items():
            available = self.runtime.nodes.get(node).devices.get(dev, {}).get("available")
            if available is not None and required > available:
                raise InsufficientMemory(
                    f"{node}:{dev} has {available} bytes free; {model.name} needs {required}",
                    required=required, available=int(available), device=f"{node}:{dev}",
                )

    async def start(
        self,
        model: ModelSpec,
        config: ServiceConfig,
        nodes: list[str] | None = None,
        device: str | None = None,
    ) -> Service:
        """Start a service; answers once every replica can answer inference."""
        placements = self.place(model, nodes, device, config.replicas)
        first = placements[0]
        number = next(self._ids)
        service_id = f"{model.name}-{first.node}-{first.device}-{number}"
        replicas = [
            Replica(
                service_id if i == 0 else f"{service_id}.{i}",
                p.node,
                p.device,
                self.runtime.nodes.get(p.node).address,
            )
            for i, p in enumerate(placements)
        ]
        if device is not None and ":" in device:
            nodes = [device.rpartition(":")[0]]
        service = Service(service_id, model, config, replicas, number=number,
                          nodes=None if nodes is None else list(nodes))
        self.services[service_id] = service
        results = await asyncio.gather(
            *(self._start_replica(service, r) for r in replicas), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self._stop_replicas(service)
            del self.services[service_id]
            raise errors[0]
        self.store.add(service.stored())
        self._balancers.setdefault(model.name, Balancer(config.load_balancing))
        self._announce(model.name)
        return service

    async def _start_replica(self, service: Service, replica: Replica) -> None:
        client = self.runtime.require_client()
        model, cfg = service.model, service.config
        await self.weights.ensure_copy(model, replica.node, replica.device)
        loader = self.weights.loader(model, replica.node, replica.device)
        replica.future = client.submit(
            ServiceActor,
            replica.replica_id,
            cfg.framework,
            replica.device,
            loader,
            cfg.max_batch_size,
            cfg.batch_timeout_ms,
            actor=True,
            workers=[replica.address],
            allow_other_workers=False,
            pure=False,
            key=f"gswarm-service-{replica.replica_id}-{time.time_ns()}",
        )
        try:
            replica.actor = await self._watched(replica, _awaited(replica.future), None)
            info = await self._call(replica, "start", timeout=CONTROL_TIMEOUT)
        except ReplicaLost as exc:
            replica.status, replica.error = "failed", str(exc)
            raise NetworkError(f"node {replica.node} was lost while loading: {exc}") from None
        except BaseException as exc:
            replica.status, replica.error = "failed", str(exc)
            raise
        replica.memory_usage = int(info["memory_usage"])
        replica.load_time = float(info["load_time"])
        replica.status = "running"

    # -- stopping -----------------------------------------------------------------------------

    async def stop(self, service_id: str) -> dict[str, Any]:
        """Drain in-flight requests, free every replica's device memory, forget the service."""
        service = self.get(service_id)
        service.stopping = True
        await self._cancel_restarts(service)
        freed = await self._stop_replicas(service)
        service.stopping = False
        self.services.pop(service_id, None)
        self.store.remove(service_id)
        self._announce(service.model.name)
        if not self.list(service.model.name):
            self._balancers.pop(service.model.name, None)
        return {"service_id": service_id, "model_name": service.model.name, "status": "stopped",
                "memory_freed": freed}

    async def _stop_replicas(self, service: Service) -> int:
        async def stop_one(replica: Replica) -> int:
            freed = 0
            if replica.status == "running" and replica.actor is not None:
                replica.status = "stopping"
                try:
                    result = await self._call(replica, "stop", timeout=CONTROL_TIMEOUT)
                    freed = int(result.get("memory_freed", 0))
                except Exception as exc:  # a lost worker freed its memory with its process
                    log.warning("gswarm: replica %s did not stop cleanly: %s", replica.replica_id, exc)
            replica.status = "stopped" if replica.status != "failed" else "failed"
            if replica.future is not None:
                with contextlib.suppress(Exception):
                    replica.future.release()
            replica.future = replica.actor = None
            return freed

        return sum(await asyncio.gather(*(stop_one(r) for r in service.replicas)))

    async def shutdown(self) -> None:
        """The server stops: free every replica, keep the services stored for the next start."""
        for service in list(self.services.values()):
            service.stopping = True
            with contextlib.suppress(Exception):
                await self._cancel_restarts(service)
                await self._stop_replicas(service)
        self.services.clear()

    async def _cancel_restarts(self, service: Service) -> None:
        for replica in service.replicas:
            task = self._restarts.pop(replica.replica_id, None)
            if task is not None:
                await cancel_and_wait(task)

    # -- bringing replicas back ---------------------------------------------------------------

    def restore(self) -> list[Service]:
        """The stored services, back as replicas `loading` until the keeper loads them again."""
        restored = []
        now = time.monotonic()
        for row in self.store.all():
            try:
                model, config = ModelSpec(**row.model), ServiceConfig(**row.config)
            except (TypeError, ValueError) as exc:  # stored by a version that no longer reads
                log.warning("gswarm: cannot restore service %s: %s", row.service_id, exc)
                continue
            replicas = [Replica(r.replica_id, r.node, r.device, address="", down_since=now)
                        for r in row.replicas]
            service = Service(row.service_id, model, config, replicas,
                              created_at=row.created_at, number=row.number, nodes=row.nodes)
            self.services[service.service_id] = service
            self._balancers.setdefault(model.name, Balancer(service.config.load_balancing))
            restored.append(service)
        self._ids = itertools.count(max(self.store.next_number(), next(self._ids)))
        return restored

    def restarting(self, replica: Replica) -> bool:
        task = self._restarts.get(replica.replica_id)
        return task is not None and not task.done()

    def begin_restart(self, service: Service, replica: Replica, node: str) -> None:
        """Load `replica` again on `node` in the background (one reload at a time per replica)."""
        if self.restarting(replica) or service.stopping:
            return
        self._restarts[replica.replica_id] = asyncio.create_task(
            self.restart_replica(service, replica, node),
            name=f"gswarm-restart-{replica.replica_id}",
        )

    async def restart_replica(self, service: Service, replica: Replica, node: str) -> None:
        """Load a down replica again on `node` (its own, back, or another eligible one). A failure
        leaves it `failed` with the reason, for a later try."""
        _release(replica)
        replica.status = "loading"  # its error stays until it runs: why it is down
        replica.memory_usage = replica.load_time = None
        home = replica.node
        try:
            replica.node, replica.address = node, self.runtime.nodes.online_node(node).address
            service.model = await self.weights.resolve(service.model.name)
            await self._start_replica(service, replica)
        except asyncio.CancelledError:
            _release(replica)
            replica.status, replica.error = "failed", "stopped while loading again"
            raise
        except Exception as exc:
            _release(replica)
            message = exc.message if isinstance(exc, GswarmError) else f"{type(exc).__name__}: {exc}"
            replica.node = home  # a move that failed leaves it waiting for its own node
            replica.status, replica.error = "failed", f"cannot load on {node}: {message}"
            replica.attempts += 1
            replica.next_try = time.monotonic() + retry_delay(replica.attempts)
            log.warning("gswarm: replica %s: %s", replica.replica_id, replica.error)
            return
        finally:
            self._restarts.pop(replica.replica_id, None)
        replica.down_since, replica.attempts, replica.error = None, 0, None
        if node != home:
            self.store.place(service.service_id, [r.stored() for r in service.replicas])
        log.info("gswarm: replica %s runs again on %s:%s", replica.replica_id, node, replica.device)
        self._announce(service.model.name)

    def hold(self, replica: Replica, reason: str) -> None:
        """A down replica that cannot load anywhere now: `failed` with `reason`, still waiting."""
        if replica.waiting:
            replica.status, replica.error = "failed", reason

    def check_lost(self, service: Service) -> None:
        """Mark running replicas whose worker is gone as failed (found without waiting for a
        request to reach them)."""
        for replica in service.replicas:
            if replica.live and self._lost(replica):
                self._mark_failed(replica, f"node {replica.node} ({replica.address}) is gone")

    async def reload_model(self, model_name: str, version: int | None = None) -> list[str]:
        """Switch every live replica of the model's services to the weights its copy holds now
        (a new version), between batches: requests in flight are answered, none is dropped.
        Answers the replicas reloaded; one that cannot reload keeps its weights (logged)."""
        reloaded: list[str] = []
        for service in self.list(model_name):
            if version is not None:
                service.model = dataclasses.replace(service.model, version=version)
            for replica in service.live_replicas:
                loader = self.weights.loader(service.model, replica.node, replica.device)
                try:
                    info = await self._call(replica, "reload", loader, timeout=CONTROL_TIMEOUT)
                except Exception as exc:
                    log.warning("gswarm: replica %s could not reload %s: %s",
                                replica.replica_id, model_name, exc)
                    continue
                replica.memory_usage = int(info["memory_usage"])
                reloaded.append(replica.replica_id)
        return reloaded

    # -- status -------------------------------------------------------------------------------

    async def status(self, service_id: str) -> dict[str, Any]:
        """The service record with its counters merged over replicas (live ones asked now)."""
        service = self.get(service_id)

        async def ask(replica: Replica) -> dict[str, Any]:
            if not replica.live:
                return {}
            try:
                return await self._call(replica, "stats", timeout=CONTROL_TIMEOUT)
            except ReplicaLost as exc:
                self._mark_failed(replica, exc)
            except Exception as exc:
                log.warning("gswarm: stats of %s failed: %s", replica.replica_id, exc)
            return {}

        stats = await asyncio.gather(*(ask(r) for r in service.replicas))
        record = self.record(service)
        samples: list[float] = []
        histogram: dict[str, int] = {}
        for replica_record, s in zip(record["replicas"], stats, strict=True):
            samples += s.pop("latency_samples", [])
            for size, n in s.get("batch_size_histogram", {}).items():
                histogram[size] = histogram.get(size, 0) + n
            replica_record["stats"] = s or None
        histogram = dict(sorted(histogram.items(), key=lambda kv: int(kv[0])))
        record.update(
            status=service.status,
            requests_served=sum(s.get("requests_served", 0) for s in stats),
            requests_failed=sum(s.get("requests_failed", 0) for s in stats),
            queue_depth=sum(s.get("queue_depth", 0) for s in stats),
            active_requests=sum(r.inflight for r in service.replicas),
            latency_p50=percentile(samples, 50),
            latency_p99=percentile(samples, 99),
            batch_size_histogram=histogram,
        )
        return record

    # -- the gateway --------------------------------------------------------------------------

    def live_replicas(self, model_name: str, service_id: str | None = None) -> list[Replica]:
        services = [self.get(service_id)] if service_id else self.list(model_name)
        if service_id and services[0].model.name != model_name:
            raise InvalidRequest(
                f"service {service_id} serves {services[0].model.name}, not {model_name}",
                {"field": "service_id"},
            )
        if not services:
            raise ModelNotFound(f"model {model_name!r} is not loaded", {"model_id": model_name})
        return [r for s in services for r in s.live_replicas]

    def find_replica(self, replica_id: str) -> Replica | None:
        for service in self.services.values():
            for replica in service.replicas:
                if replica.replica_id == replica_id:
                    return replica
        return None

    def service_of(self, replica: Replica) -> Service:
        for service in self.services.values():
            if replica in service.replicas:
                return service
        raise NotFound(f"replica {replica.replica_id} is gone", {"replica_id": replica.replica_id})

    async def infer(
        self,
        model_name: str,
        rows: Any,
        options: dict[str, Any],
        *,
        timeout: float | None = None,
        service_id: str | None = None,
        prefer: Replica | None = None,
    ) -> tuple[dict[str, Any], Replica]:
        """Answer from a live replica (`prefer` when it is live); a lost replica is marked failed
        and the request retried on another one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        lost: dict[str, str] = {}  # replica id -> where it was and why it was lost
        while True:
            candidates = [
                r for r in self.live_replicas(model_name, service_id) if r.replica_id not in lost
            ]
            if not candidates:
                reason = "every replica failed" if not lost else (
                    "its replicas were lost: " + "; ".join(lost.values()))
                raise ResourceUnavailable(
                    f"model {model_name!r} has no live replica: {reason}",
                    {"model_id": model_name, **({"lost": lost} if lost else {})},
                )
            if prefer is not None and prefer in candidates:
                replica = prefer
            else:
                balancer = self._balancers.setdefault(model_name, Balancer())
                replica = balancer.pick(candidates, lambda r: r.inflight)
            if timeout is None:
                timeout = self.service_of(replica).config.timeout
                deadline = None if timeout is None else time.monotonic() + timeout
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            replica.inflight += 1
            try:
                result = await self._call(replica, "infer", rows, options, timeout=remaining)
                return result, replica
            except ReplicaLost as exc:
                self._mark_failed(replica, exc)
                lost[replica.replica_id] = f"{replica.replica_id} on {replica.node}: {exc}"
                prefer = None
            finally:
                replica.inflight -= 1

    def _mark_failed(self, replica: Replica, exc: BaseException | str) -> None:
        if replica.status in ("running", "loading", "stopping"):
            log.warning("gswarm: replica %s on %s failed: %s", replica.replica_id, replica.node, exc)
            replica.status, replica.error = "failed", f"worker lost: {exc}"
            replica.down_since, replica.attempts, replica.next_try = time.monotonic(), 0, 0.0
            with contextlib.suppress(NotFound):
                self._announce(self.service_of(replica).model.name)

    # -- inside -------------------------------------------------------------------------------

    async def _call(self, replica: Replica, method: str, *args: Any, timeout: float | None) -> Any:
        """`replica.actor.method(*args)`, watched (even reaching the actor may find it lost)."""

        async def invoke() -> Any:
            return await getattr(replica.actor, method)(*args)

        return await self._watched(replica, invoke(), timeout)

    async def _watched(self, replica: Replica, call: Awaitable[Any], timeout: float | None) -> Any:
        """`call`'s result; `ReplicaLost` when the replica's node goes away meanwhile,
        `RequestTimeout` after `timeout` seconds, worker errors as the API's errors."""
        waiter = asyncio.ensure_future(_awaited(call))
        started = time.monotonic()
        try:
            while True:
                step = WATCH_INTERVAL
                if timeout is not None:
                    step = min(step, max(0.0, timeout - (time.monotonic() - started)))
                done, _ = await asyncio.wait({waiter}, timeout=step)
                if done:
                    break
                if self._lost(replica):
                    raise ReplicaLost(f"node {replica.node} ({replica.address}) is gone")
                if timeout is not None and time.monotonic() - started >= timeout:
                    raise RequestTimeout(
                        f"no answer from {replica.replica_id} within {timeout:g} s",
                        {"timeout": timeout, "replica_id": replica.replica_id},
                    )
        finally:
            if not waiter.done():
                waiter.cancel()
                with contextlib.suppress(BaseException):
                    await waiter
        try:
            return waiter.result()
        except WorkerOpError as exc:
            raise api_error(exc) from None
        except GswarmError:
            raise
        except (OSError, KeyError) as exc:  # no route to the worker, or the actor is gone from it
            raise ReplicaLost(f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:
            lost = "Actor was lost" in str(exc)  # distributed's RuntimeError for a dead holder
            if lost or type(exc).__name__ in ("KilledWorker", "CommClosedError", "FutureCancelledError"):
                raise ReplicaLost(f"{type(exc).__name__}: {exc}") from None
            raise InternalError(f"replica {replica.replica_id} failed: {type(exc).__name__}: {exc}") from None

    def _lost(self, replica: Replica) -> bool:
        try:
            node = self.runtime.nodes.get(replica.node)
        except GswarmError:
            return True
        return not node.online or node.address != replica.address

    def _announce(self, model_name: str) -> None:
        services = {
            r.node: self.url for s in self.list(model_name) for r in s.replicas if r.live
        }
        with contextlib.suppress(Exception):
            self.weights.services_changed(model_name, services)


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _release(replica: Replica) -> None:
    """Let go of the replica's actor (a dead worker's, or a half-loaded one)."""
    if replica.future is not None:
        with contextlib.suppress(Exception):
            replica.future.release()
    replica.future = replica.actor = None
