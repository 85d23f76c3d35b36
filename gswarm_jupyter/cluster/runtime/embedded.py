"""The embedded Dask cluster: workers `node1..nodeN` on loopback, mutual TLS between every part,
and no HTTP port on the scheduler or any worker. The scheduler's HTTP application (its dashboard
included, never its proxy) may be served on a unix socket in a 0700 folder, by the `ServeHttp`
the server gives (server/unix_http.py: tornado, mode 0600), for the server to pass on behind its
own authentication; no TCP port ever serves it, and this module serves no HTTP itself. Worker
processes live in a session of their own: only the server, never a terminal, tells them to stop.
A node's nanny stays as long as the cluster: whenever its worker process dies, it starts a new
one under the same name."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from distributed import LocalCluster, Nanny, Scheduler, Worker
from distributed.deploy.cluster import Cluster
from distributed.http.routing import RoutingApplication
from distributed.security import Security

SOCKET_NAME = "scheduler-http.sock"
_MAX_SOCKET_PATH = 100  # AF_UNIX paths hold 108 bytes on Linux, fewer elsewhere
_OPEN_PROXY = "distributed.http.proxy"  # would relay to any host:port a caller names


class HttpService(Protocol):
    """A running HTTP server (tornado's `HTTPServer`) over the scheduler's application."""

    def stop(self) -> None: ...


# (the scheduler's HTTP application, a unix socket path) -> the server serving it there alone
ServeHttp = Callable[[RoutingApplication, str], HttpService]


class _NoHttp:
    """A Dask server that opens no HTTP port: Dask would serve its pages to anyone who connects."""

    def start_http_server(self, routes: Any, dashboard_address: Any, default_port: int = 0,
                          ssl_options: Any = None) -> None:
        """Serve nothing over HTTP; `services` stays without a dashboard."""


class HttpFreeScheduler(_NoHttp, Scheduler):
    """A scheduler without its HTTP server."""


class SocketScheduler(Scheduler):
    """A scheduler whose HTTP application, its dashboard at `http_prefix` included, listens on the
    unix socket `http_socket` alone."""

    def __init__(self, *args: Any, http_socket: str, serve_http: ServeHttp,
                 **kwargs: Any) -> None:
        self.http_socket = http_socket
        self.serve_http = serve_http
        kwargs.update(dashboard=True, dashboard_address=None)
        super().__init__(*args, **kwargs)

    def start_http_server(self, routes: Any, dashboard_address: Any, default_port: int = 0,
                          ssl_options: Any = None) -> None:
        """Serve Dask's routes, without its open proxy, on the unix socket only."""
        kept = [r for r in routes if getattr(r[1], "__module__", "") != _OPEN_PROXY]
        self.http_application = RoutingApplication(kept)
        self.http_server = self.serve_http(self.http_application, self.http_socket)
        self.http_server.address, self.http_server.port = self.http_socket, 0  # Dask reads them

    async def _stop_services(self) -> None:
        await super()._stop_services()
        self.http_server.stop()
        with contextlib.suppress(OSError):
            os.unlink(self.http_socket)


class HttpFreeWorker(_NoHttp, Worker):
    """A worker without its HTTP server (in-process, or started by a nanny in its own process)."""


class SessionWorker(HttpFreeWorker):
    """The worker a nanny starts in its own process. It leaves the server's session first, so a
    Ctrl-C in the terminal (or a signal to the server's process group) reaches the server alone,
    which then stops services, tasks and workers in order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        leave_session()
        super().__init__(*args, **kwargs)


class _SpawnEnv:
    """The server's own values of the variables nannies write into its environment while they
    spawn workers, put back once no nanny is spawning (nannies start concurrently)."""

    def __init__(self) -> None:
        self.spawning = 0
        self.outside: dict[str, str | None] = {}

    def enter(self, names: set[str]) -> None:
        if self.spawning == 0:
            self.outside = {name: os.environ.get(name) for name in names}
        self.spawning += 1

    def leave(self) -> None:
        self.spawning -= 1
        if self.spawning:
            return
        for name, value in self.outside.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_SPAWN_ENV = _SpawnEnv()


class NodeNanny(Nanny):
    """A nanny whose worker process starts with the node's thread variables (the `env` it was
    given: threads_per_node) instead of Dask's pre-spawn defaults of one thread, and which leaves
    the server's own environment as it found it. Dask's nanny writes its pre-spawn variables
    (OMP_NUM_THREADS=1 and the like) into its own process's environment before it spawns the
    worker and never restores them, so every kernel or subprocess the server started afterwards
    ran its BLAS and torch on one thread.

    The worker keeps glibc's malloc arena per thread; how its heaps are kept from being mapped
    and unmapped at every step is the node agent's (cluster/runtime/allocator.py)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in set(self.pre_spawn_env) & set(self.env):
            self.pre_spawn_env[name] = self.env[name]

    async def instantiate(self) -> Any:
        _SPAWN_ENV.enter(set(self.pre_spawn_env))
        try:
            return await super().instantiate()
        finally:
            _SPAWN_ENV.leave()


def leave_session() -> None:
    """Start a session of this process's own: no controlling terminal, no shared process group."""
    with contextlib.suppress(OSError):  # already a session leader
        os.setsid()


def http_socket_path(data_dir: Path) -> Path:
    """Where the scheduler's HTTP socket goes: a fresh 0700 folder under `data_dir`, or under the
    temporary directory when that path would be too long for a unix socket."""
    folder = data_dir / "dask-http"
    if len(str(folder / SOCKET_NAME)) > _MAX_SOCKET_PATH:
        return Path(tempfile.mkdtemp(prefix="gswarm-dask-")) / SOCKET_NAME
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)  # an existing folder may have been made with other rights
    return folder / SOCKET_NAME


class NodeCluster(LocalCluster):
    """A `LocalCluster` whose workers are named `node1`, `node2`, ..., none of them serving HTTP;
    the scheduler serves HTTP through `serve_http` on `http_socket` (a unix socket) at
    `http_prefix`, or not at all (without either)."""

    def __init__(self, *, security: Security, processes: bool, http_socket: str | None = None,
                 serve_http: ServeHttp | None = None, http_prefix: str = "/",
                 **kwargs: Any) -> None:
        self.http_socket = http_socket if serve_http is not None else None
        self.serve_http = serve_http
        self.http_prefix = http_prefix
        super().__init__(
            security=security,
            protocol="tls://",
            host="127.0.0.1",
            processes=processes,
            dashboard_address=None,
            worker_dashboard_address=None,
            **kwargs,
        )

    def _new_worker_name(self, worker_number: int) -> str:
        return f"node{worker_number + 1}"

    async def _start(self) -> None:
        if self.http_socket is None:
            self.scheduler_spec = {**self.scheduler_spec, "cls": HttpFreeScheduler}
        else:
            options = {**self.scheduler_spec["options"], "http_socket": self.http_socket,
                       "serve_http": self.serve_http, "http_prefix": self.http_prefix}
            self.scheduler_spec = {"cls": SocketScheduler, "options": options}
        await super()._start()

    def new_worker_spec(self) -> dict[str, dict[str, Any]]:
        return {name: _http_free(spec) for name, spec in super().new_worker_spec().items()}

    def _update_worker_status(self, op: str, msg: Any) -> None:
        """Follow the scheduler's workers, without Dask's `SpecCluster` rule of closing a lost
        worker's nanny when no worker of that name is there `lost-worker-timeout` (15 s) after
        the loss: a node whose new worker was not up yet at that moment (a slow start, or a
        second death) would never come back."""
        Cluster._update_worker_status(self, op, msg)


def _http_free(spec: dict[str, Any]) -> dict[str, Any]:
    """The same worker spec, its worker (or the worker its nanny starts, in its own session)
    without HTTP."""
    if isinstance(spec["cls"], type) and issubclass(spec["cls"], Nanny):
        return {**spec, "cls": NodeNanny,
                "options": {**spec["options"], "worker_class": SessionWorker}}
    return {**spec, "cls": HttpFreeWorker}
