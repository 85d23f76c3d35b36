"""The Dask cluster behind the server: an embedded `LocalCluster` of `node1..nodeN` (mutual TLS, no
HTTP port: its scheduler's dashboard is on a unix socket), or an existing scheduler, plus a
watcher that keeps the node directory true from the scheduler's heartbeats. The server's client
always uses the cluster's `security`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
from dask.utils import parse_timedelta
from distributed import Client
from distributed.security import Security

from ...core.aio import cancel_and_wait
from ...core.errors import NetworkError, ResourceUnavailable
from ...core.listeners import Listeners
from ...core.nodes import NodeChange, NodeDirectory, VirtualOf, WorkerSeen, no_virtual
from .agent import METRIC, NodeAgent
from .embedded import NodeCluster, ServeHttp, http_socket_path
from .security import SchedulerTls, cluster_security
from .watch import WatchTimeout, WorkerLost, moved, watch

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    scheduler_address: str = ""
    local_nodes: int = 2
    worker_memory_limit: str | int | None = "auto"
    local_processes: bool = True
    threads_per_node: int = 2
    data_dir: Path = Path(".")
    poll_interval: float = 0.5
    connect_timeout: float = 3.0
    scheduler_tls: SchedulerTls = SchedulerTls()  # for an external scheduler only
    dashboard_prefix: str = "/gswarm/dask/"  # the embedded scheduler's HTTP prefix (its dashboard)

    @property
    def embedded(self) -> bool:
        return not self.scheduler_address


class ClusterRuntime:
    """Owns the Dask client (and, embedded, the cluster); `nodes` is always the latest known truth.

    `security` is what a Dask peer needs to reach the cluster: made for this run when embedded."""

    def __init__(self, config: ClusterConfig, virtual: VirtualOf = no_virtual,
                 serve_http: ServeHttp | None = None) -> None:
        """`virtual`: the server's virtual GPUs of a node, shown among its devices.
        `serve_http`: serves the embedded scheduler's HTTP application (its dashboard) on a unix
        socket (server/unix_http.py); without it the scheduler serves no HTTP at all."""
        self.config = config
        self.serve_http = serve_http
        self.security = cluster_security(config.embedded, config.scheduler_tls)
        stale_after = max(_unresponsive_after(), 10 * config.poll_interval)
        self.nodes = NodeDirectory(stale_after=stale_after, virtual=virtual)
        self.client: Client | None = None
        self.cluster: NodeCluster | None = None
        self.reason: str | None = "starting"
        self.listeners: Listeners[NodeChange] = Listeners("node")
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._ready = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self.client is not None and self.reason is None

    @property
    def scheduler_address(self) -> str | None:
        if self.cluster is not None:
            return self.cluster.scheduler_address
        return self.config.scheduler_address or None

    @property
    def dashboard_socket(self) -> str | None:
        """The unix socket the embedded scheduler serves its dashboard on (at `dashboard_prefix`),
        or None: an external scheduler, one not started yet, or no bokeh to draw it."""
        if self.cluster is None or self.cluster.http_socket is None or not _has_bokeh():
            return None
        return self.cluster.http_socket

    def require_client(self) -> Client:
        if self.client is None:
            raise ResourceUnavailable("the Dask cluster is not connected")
        return self.client

    async def run_on(
        self, node: str, fn: Callable[..., Any], *args: Any, timeout: float | None = None
    ) -> Any:
        """`fn(*args)` on an online node's worker (Dask futures among `args` are carried there),
        watched: `NetworkError` when that worker goes away meanwhile or gives no answer within
        `timeout` seconds, a worker op's error as the API's."""
        address = self.nodes.online_node(node).address
        future = self.require_client().submit(
            fn, *args, workers=[address], allow_other_workers=False, pure=False
        )
        try:
            return await self.watch_on(node, address, future, fn.__name__, timeout)
        finally:
            future.release()

    async def watch_on(self, node: str, address: str, call: Awaitable[Any], what: str,
                       timeout: float | None = None) -> Any:
        """`call`, running on `node`'s worker at `address`, awaited with `watch`: its loss or
        silence past `timeout` is the API's `NetworkError` naming the node."""
        try:
            return await watch(call, lambda: node if moved(self.nodes, node, address) else None,
                               timeout)
        except WorkerLost as exc:
            raise NetworkError(f"node {node} was lost during {what}: {exc}",
                               {"node": node}) from None
        except WatchTimeout:
            raise NetworkError(f"node {node} gave no answer to {what} within {timeout:g} s",
                               {"node": node}) from None

    def scheduler_info(self) -> dict[str, Any]:
        return {
            "address": self.scheduler_address,
            "embedded": self.config.embedded,
            "connected": self.connected,
            "reason": self.reason,
        }

    async def start(self) -> None:
        """Start in the background; `wait_ready` waits for the first full view of the cluster."""
        self._task = asyncio.create_task(self._run(), name="gswarm-cluster")

    async def wait_ready(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def stop(self) -> None:
        self._stopping = True
        await cancel_and_wait(self._task)
        await self._close_client()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                await self.cluster.close(timeout=10)
            self.cluster = None

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._connect()
            except Exception as exc:  # unreachable scheduler: keep serving, say why, retry
                self.reason = f"cannot reach the Dask scheduler at {self.scheduler_address}: {exc}"
                log.warning("gswarm: %s", self.reason)
                await self._close_client()
                await asyncio.sleep(1.0)
                continue
            await self._watch()
            await self._close_client()

    async def _connect(self) -> None:
        cfg = self.config
        if cfg.embedded and self.cluster is None:
            scratch = cfg.data_dir / "dask-scratch"
            scratch.mkdir(parents=True, exist_ok=True)
            self.cluster = NodeCluster(
                security=self.security,
                n_workers=0,
                processes=cfg.local_processes,
                threads_per_worker=cfg.threads_per_node,
                memory_limit=cfg.worker_memory_limit,
                scheduler_port=0,
                local_directory=str(scratch),
                asynchronous=True,
                http_socket=str(http_socket_path(cfg.data_dir)) if self.serve_http else None,
                serve_http=self.serve_http,
                http_prefix=cfg.dashboard_prefix,
                **_worker_env(cfg),
            )
            # assigned before it is awaited, so a stop during start-up still closes it
            await self.cluster
        address = self.scheduler_address
        self.client = await _connected_client(address, cfg.connect_timeout, self.security)
        store_root = str(cfg.data_dir / "nodes") if cfg.embedded else None
        await self.client.register_plugin(NodeAgent(store_root=store_root))
        if self.cluster is not None and not self.cluster.worker_spec:
            self.cluster.scale(cfg.local_nodes)
            await self.client.wait_for_workers(cfg.local_nodes, timeout=120)
        self.reason = None
        log.info("gswarm: connected to the Dask scheduler at %s", address)

    async def _watch(self) -> None:
        """Poll the scheduler's view of its workers until the connection is lost."""
        assert self.client is not None
        while not self._stopping:
            try:
                identity = await self.client.scheduler.identity()
            except Exception as exc:
                self.reason = f"lost the Dask scheduler at {self.scheduler_address}: {exc}"
                log.warning("gswarm: %s", self.reason)
                self._publish(self.nodes.mark_all_offline())
                return
            self._publish(self.nodes.observe(_workers_seen(identity), time.time()))
            if not self._ready.is_set() and self._all_reported(identity):
                self._ready.set()
            await asyncio.sleep(self.config.poll_interval)

    def _all_reported(self, identity: dict[str, Any]) -> bool:
        workers = identity.get("workers", {}).values()
        return all(METRIC in (w.get("metrics") or {}) for w in workers)

    def _publish(self, changes: list[NodeChange]) -> None:
        for change in changes:
            log.info("gswarm: node %s is %s", change.node, change.status)
            self.listeners.emit(change)

    async def _close_client(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close(timeout=5)


async def _connected_client(address: str, timeout: float, security: Security) -> Client:
    """A client of the scheduler at `address`; one that cannot connect is closed, not leaked."""
    client = Client(address, asynchronous=True, timeout=timeout, security=security)
    try:
        await client
    except BaseException:
        with contextlib.suppress(Exception):
            await client.close(timeout=timeout)
        raise
    return client


@functools.cache
def _has_bokeh() -> bool:
    """Whether Dask's dashboard can run here (it needs bokeh)."""
    try:
        import distributed.dashboard.scheduler  # noqa: F401
    except ImportError:
        return False
    return True


def _unresponsive_after() -> float:
    """Seconds without a heartbeat before a listed worker counts as offline: Dask's own limit for
    an unresponsive connection. A worker reading a large message over TLS does not heartbeat
    until it has read it all (seconds for hundreds of MB); one that dies is dropped at once."""
    return float(parse_timedelta(dask.config.get("distributed.comm.timeouts.tcp"), "s"))


def _worker_env(cfg: ClusterConfig) -> dict[str, Any]:
    """Worker processes may use their node's threads for torch and BLAS: Dask's default of one
    thread suits many small tasks, not a node that trains or serves models."""
    if not cfg.local_processes:
        return {}
    threads = str(cfg.threads_per_node)
    return {"env": {v: threads for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}


def _workers_seen(identity: dict[str, Any]) -> list[WorkerSeen]:
    """Workers whose node agent has reported: a worker becomes a node once it can say what it has."""
    seen = []
    for address, w in identity.get("workers", {}).items():
        metrics = w.get("metrics") or {}
        if METRIC not in metrics:
            continue
        seen.append(
            WorkerSeen(
                name=str(w.get("name", address)),
                address=address,
                host=str(w.get("host", "")),
                last_seen=float(w.get("last_seen") or time.time()),
                memory_limit=w.get("memory_limit"),
                report=metrics.get(METRIC),
                threads=int(w.get("nthreads") or 0),
            )
        )
    return seen
