"""The server side of the Dask nodes' sampling: a periodic pull of every worker's frames."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from distributed import Client

from .node import SamplerPlugin, SessionSpec, sync_node

log = logging.getLogger(__name__)


class FrameSink(Protocol):
    def acks(self) -> dict[str, tuple[str, int]]: ...
    def specs(self) -> list[SessionSpec]: ...
    def accept_node(self, report: dict[str, Any], kind: str) -> None: ...


class DaskCollector:
    """Registers the sampler plugin on the cluster and pulls frames every `interval_s`."""

    def __init__(
        self,
        sink: FrameSink,
        client: Callable[[], Client | None],
        interval_s: float = 0.25,
        idle_interval_ms: int = 1000,
    ) -> None:
        self.sink = sink
        self.client = client
        self.interval_s = interval_s
        self.idle_interval_ms = idle_interval_ms
        self._registered: Client | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gswarm-profiler-collector")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def sync(self, timeout: float = 10.0) -> int:
        """One pull from every worker (plans out, frames in); answers the frames received."""
        async with self._lock:
            client = self.client()
            if client is None or client.status != "running":
                return 0
            if client is not self._registered:
                await asyncio.wait_for(
                    client.register_plugin(SamplerPlugin(self.idle_interval_ms)), timeout
                )
                self._registered = client
            results = await asyncio.wait_for(
                client.run(sync_node, self.sink.acks(), self.sink.specs(), on_error="return"),
                timeout,
            )
            received = 0
            for report in results.values():
                if isinstance(report, BaseException) or report.get("missing"):
                    continue
                self.sink.accept_node(report, "dask")
                received += len(report["frames"])
            return received

    async def _run(self) -> None:
        while True:
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the cluster is away: the workers keep buffering
                log.debug("gswarm: profiler pull failed: %s", exc)
            await asyncio.sleep(self.interval_s)
