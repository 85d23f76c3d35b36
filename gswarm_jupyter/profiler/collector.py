"""The server side of the Dask nodes' sampling: a periodic pull of every worker's frames."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from distributed import Client

from ..core.aio import cancel_and_wait
from .node import SamplerPlugin, SessionSpec, sync_node

log = logging.getLogger(__name__)

REREGISTER_AFTER_S = 10.0


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
        self._registered_at = -REREGISTER_AFTER_S
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gswarm-profiler-collector")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def sync(self, timeout: float = 10.0) -> int:
        """One pull from every worker (plans out, frames in); answers the frames received."""
        async with self._lock:
            client = self.client()
            if client is None or client.status != "running":
                return 0
            results = await asyncio.wait_for(
                client.run(sync_node, self.sink.acks(), self.sink.specs(), on_error="return"),
                timeout,
            )
            received = 0
            missing = False
            for report in results.values():
                if isinstance(report, BaseException):
                    continue
                if report.get("missing"):
                    missing = True
                    continue
                self.sink.accept_node(report, "dask")
                received += len(report["frames"])
            if missing:
                await self._register(client, timeout)
            return received

    async def _register(self, client: Client, timeout: float) -> None:
        """Give the scheduler the sampler plugin (it hands it to every worker, now and later).

        Only when a worker lacks it, and not again within `REREGISTER_AFTER_S`: registering
        replaces the plugin on workers that have it, and with it their unacknowledged frames.
        """
        now = time.monotonic()
        if now - self._registered_at < REREGISTER_AFTER_S:
            return
        self._registered_at = now
        await asyncio.wait_for(
            client.register_plugin(SamplerPlugin(self.idle_interval_ms)), timeout
        )

    async def _run(self) -> None:
        while True:
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the cluster is away: the workers keep buffering
                log.debug("gswarm: profiler pull failed: %s", exc)
            await asyncio.sleep(self.interval_s)
