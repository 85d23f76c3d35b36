"""The embedded Dask cluster: workers `node1..nodeN` on loopback, mutual TLS between every part,
and no HTTP endpoint (dashboard, /metrics, proxy) on the scheduler or any worker. Worker processes
live in a session of their own: only the server, never a terminal, tells them to stop. A node's
nanny stays as long as the cluster: whenever its worker process dies, it starts a new one under
the same name."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from distributed import LocalCluster, Nanny, Scheduler, Worker
from distributed.deploy.cluster import Cluster
from distributed.security import Security


class _NoHttp:
    """A Dask server that opens no HTTP port: Dask would serve its pages to anyone who connects."""

    def start_http_server(self, routes: Any, dashboard_address: Any, default_port: int = 0,
                          ssl_options: Any = None) -> None:
        """Serve nothing over HTTP; `services` stays without a dashboard."""


class HttpFreeScheduler(_NoHttp, Scheduler):
    """A scheduler without its HTTP server."""


class HttpFreeWorker(_NoHttp, Worker):
    """A worker without its HTTP server (in-process, or started by a nanny in its own process)."""


class SessionWorker(HttpFreeWorker):
    """The worker a nanny starts in its own process. It leaves the server's session first, so a
    Ctrl-C in the terminal (or a signal to the server's process group) reaches the server alone,
    which then stops services, tasks and workers in order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        leave_session()
        super().__init__(*args, **kwargs)


def leave_session() -> None:
    """Start a session of this process's own: no controlling terminal, no shared process group."""
    with contextlib.suppress(OSError):  # already a session leader
        os.setsid()


class NodeCluster(LocalCluster):
    """A `LocalCluster` whose workers are named `node1`, `node2`, ..., none of them serving HTTP."""

    def __init__(self, *, security: Security, processes: bool, **kwargs: Any) -> None:
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
        self.scheduler_spec = {**self.scheduler_spec, "cls": HttpFreeScheduler}
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
        return {**spec, "options": {**spec["options"], "worker_class": SessionWorker}}
    return {**spec, "cls": HttpFreeWorker}
