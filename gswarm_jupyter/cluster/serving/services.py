"""Services: a model loaded by a backend on devices of nodes, each copy a replica
(`replicas.py`); this module starts, stops, restores and reloads them, and hands requests to the
`Gateway`.

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
from typing import Any

from ...core.aio import cancel_and_wait
from ...core.errors import GswarmError, NetworkError
from ...core.recovery import retry_delay
from ...core.service_store import ServiceStore
from ...core.serving_api import ServiceConfig
from ...core.stats import percentile
from ..runtime.cluster import ClusterRuntime
from ..storage.engine import Reservations
from ..storage.weights import ModelSpec, WeightSource
from .actor import ServiceActor
from .gateway import Gateway
from .replicas import (
    CONTROL_TIMEOUT,
    Placement,
    Replica,
    ReplicaLost,
    Service,
    call,
    find_service,
    place,
    release,
    watched,
)

log = logging.getLogger(__name__)


class ServiceManager:
    """Every service of the cluster: started, stopped, restored and reloaded here."""

    def __init__(
        self, runtime: ClusterRuntime, weights: WeightSource, store: ServiceStore, url: str = "",
        reservations: Reservations | None = None,
    ) -> None:
        self.runtime = runtime
        self.reservations = reservations  # allocations: withheld where replicas are placed
        self.weights = weights
        self.store = store
        self.url = url  # the compute-plane address that reaches services
        self.services: dict[str, Service] = {}
        self.gateway = Gateway(runtime.nodes, self.services, self._announce)
        self._ids = itertools.count(1)  # `restore` moves it past every stored number
        self._restarts: dict[str, asyncio.Task[None]] = {}  # replica id -> its reload

    # -- reading ------------------------------------------------------------------------------

    def get(self, service_id: str) -> Service:
        return find_service(self.services, service_id)

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
        return place(self.runtime.nodes, model, nodes, device, replicas, self.reservations)

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
        self.gateway.balance(model.name, config.load_balancing)
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
            self._vgpu_share(replica.node, replica.device),
            actor=True,
            workers=[replica.address],
            allow_other_workers=False,
            pure=False,
            key=f"gswarm-service-{replica.replica_id}-{time.time_ns()}",
        )
        try:
            replica.actor = await watched(self.runtime.nodes, replica, replica.future, None)
            info = await self._call(replica, "start", timeout=CONTROL_TIMEOUT)
        except ReplicaLost as exc:
            replica.status, replica.error = "failed", str(exc)
            raise NetworkError(f"node {replica.node} was lost while loading: {exc}") from None
        except BaseException as exc:
            replica.status, replica.error = "failed", str(exc)
            raise
        replica.memory_usage = int(info["memory_usage"])
        replica.load_time = float(info["load_time"])
        replica.lane = info.get("lane")
        replica.status = "running"

    def _vgpu_share(self, node: str, device: str) -> dict[str, Any] | None:
        """What a replica on a virtual GPU needs of it (its fair-queue weight, its backing)."""
        for vgpu in self.runtime.nodes.get(node).vgpus:
            if vgpu.get("device") == device and "group" in vgpu:
                return {k: vgpu[k] for k in ("virtual_gpu_id", "group", "weight", "backing",
                                             "physical_device", "memory_size")}
        return None

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
            self.gateway.forget(service.model.name)
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
            release(replica)
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
            self.gateway.balance(model.name, service.config.load_balancing)
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
        release(replica)
        replica.status = "loading"  # its error stays until it runs: why it is down
        replica.memory_usage = replica.load_time = None
        home = replica.node
        try:
            replica.node, replica.address = node, self.runtime.nodes.online_node(node).address
            service.model = await self.weights.resolve(service.model.name)
            await self._start_replica(service, replica)
        except asyncio.CancelledError:
            release(replica)
            replica.status, replica.error = "failed", "stopped while loading again"
            raise
        except Exception as exc:
            release(replica)
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
                self.gateway.mark_failed(replica, exc)
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

    # -- requests, through the gateway --------------------------------------------------------

    def live_replicas(self, model_name: str, service_id: str | None = None) -> list[Replica]:
        return self.gateway.live_replicas(model_name, service_id)

    def find_replica(self, replica_id: str) -> Replica | None:
        return self.gateway.find_replica(replica_id)

    def service_of(self, replica: Replica) -> Service:
        return self.gateway.service_of(replica)

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
        """`Gateway.infer`: answer from a live replica, retried on another if it is lost."""
        return await self.gateway.infer(model_name, rows, options, timeout=timeout,
                                        service_id=service_id, prefer=prefer)

    def check_lost(self, service: Service) -> None:
        """Mark running replicas whose worker is gone as failed."""
        self.gateway.check_lost(service)

    # -- inside -------------------------------------------------------------------------------

    async def _call(self, replica: Replica, method: str, *args: Any, timeout: float | None) -> Any:
        return await call(self.runtime.nodes, replica, method, *args, timeout=timeout)

    def _announce(self, model_name: str) -> None:
        services = {
            r.node: self.url for s in self.list(model_name) for r in s.replicas if r.live
        }
        with contextlib.suppress(Exception):
            self.weights.services_changed(model_name, services)
