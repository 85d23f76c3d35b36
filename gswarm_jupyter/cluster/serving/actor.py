"""The worker side of one service replica, as a Dask actor: the runner holding the model on its
device and the batcher feeding it. Its async methods run on the worker's event loop; the forward
passes run on the batcher's own thread. Errors of `core` cross back as `WorkerOpError`. On
Linux it also answers `infer_many` over a same-host lane (`lane.py`) while its worker serves it."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable
from typing import Any

from distributed import get_worker

from ...backends.base import GenerateOptions
from ...backends.batcher import Batcher
from ...backends.registry import load_runner
from ...core.errors import GswarmError, ResourceUnavailable
from ...core.heap import release, settle
from ..runtime.signals import WorkerOpError
from ..storage.weights import Loader
from ..tenancy.vgpu_worker import bound_cuda_memory, runner_device, turn_of
from . import lane

log = logging.getLogger(__name__)
_GONE = {"closing", "closed", "failed"}  # a worker in these states serves no actor


def _crossing(exc: GswarmError) -> WorkerOpError:
    return WorkerOpError(exc.code, exc.message, exc.details)


class ServiceActor:
    """One model on one device of this worker, answering batched inference."""

    def __init__(
        self,
        replica_id: str,
        framework: str,
        device: str,
        loader: Loader,
        max_batch_size: int,
        batch_timeout_ms: float,
        share: dict[str, Any] | None = None,
    ) -> None:
        """`share`: the virtual GPU `device` is, if it is one (`Vgpu.share()`)."""
        started = time.perf_counter()
        try:
            bound_cuda_memory(share)
            arch, config, params = loader()
            self.runner = load_runner(framework, arch, config, params, runner_device(device, share))
        except GswarmError as exc:
            raise _crossing(exc) from None
        self.replica_id = replica_id
        self.framework = framework
        self.device_name = device
        self.load_time = time.perf_counter() - started
        self.max_batch_size = max_batch_size
        self.batch_timeout_ms = batch_timeout_ms
        self.share = share
        self.batcher: Batcher | None = None
        self._lane: lane.LaneServer | None = None
        self._lane_info: dict[str, str] | None = None

    async def start(self) -> dict[str, Any]:
        """Start the batching loop (on the worker's event loop) and the same-host lane; answer
        what loading measured and how to reach the lane (`lane`, None where there is none)."""
        if self.batcher is None:
            self.batcher = Batcher(self.runner, self.max_batch_size, self.batch_timeout_ms,
                                   turn=turn_of(self.share))
            await self._open_lane()
            settle()  # see core.heap: the model's objects and the modules it imported
        return {
            "load_time": self.load_time,
            "memory_usage": self.runner.memory_bytes(),
            "device": self.runner.device,
            "arch": self.runner.arch,
            "lane": self._lane_info,
        }

    async def _open_lane(self) -> None:
        """Open the same-host lane where there can be one: on Linux, for an actor its worker
        holds (a sandbox refusing Unix sockets leaves the Dask comm to serve alone)."""
        served = self._served()
        if served is None or not lane.supported():
            return
        server = lane.LaneServer({m: getattr(self, m) for m in lane.SERVED}, served)
        try:
            self._lane_info = await server.open()
        except OSError as exc:
            log.warning("gswarm: replica %s has no same-host lane: %s", self.replica_id, exc)
            return
        self._lane = server

    def _served(self) -> Callable[[], bool] | None:
        """Whether this actor's worker still serves it (running, holding it as an actor); None
        for an actor no worker holds."""
        try:
            worker = get_worker()
        except ValueError:
            return None
        key = next((k for k, a in worker.state.actors.items() if a is self), None)
        if key is None:
            return None

        def served() -> bool:
            return worker.status.name not in _GONE and worker.state.actors.get(key) is self

        return served

    async def infer(self, rows: Any, options: dict[str, Any] | None = None) -> dict[str, Any]:
        if self.batcher is None:
            raise _crossing(ResourceUnavailable("the service is not started"))
        try:
            served = await self.batcher.submit(rows, GenerateOptions.of(options))
        except GswarmError as exc:
            raise _crossing(exc) from None
        extra = self.runner.peak_extra_bytes()
        return {
            "output_data": served.rows,
            "output_text": served.texts,
            "tokens_generated": served.tokens_generated,
            "inference_time": served.latency,
            "memory_used": self.runner.memory_bytes() + (extra or 0),
        }

    async def infer_many(self, requests: list[tuple[Any, dict[str, Any] | None]]) -> list[Any]:
        """Requests the gateway sent in one message, each answered on its own (batched with the
        others by the batcher): its `infer` result, or the exception it raised."""
        if len(requests) == 1:  # a lone request: awaited as it is, no task of its own
            rows, options = requests[0]
            try:
                return [await self.infer(rows, options)]
            except Exception as exc:
                return [exc]
        return await asyncio.gather(
            *(self.infer(rows, options) for rows, options in requests), return_exceptions=True
        )

    async def reload(self, loader: Loader) -> dict[str, Any]:
        """Switch to the weights `loader` answers now (a new version), between batches."""
        if self.batcher is None:
            raise _crossing(ResourceUnavailable("the service is not started"))
        started = time.perf_counter()
        context = contextvars.copy_context()  # the loader finds its worker through a contextvar

        def build() -> Any:
            arch, config, params = context.run(loader)
            return load_runner(self.framework, arch, config, params,
                               runner_device(self.device_name, self.share))

        try:
            await self.batcher.replace_runner(build)
        except GswarmError as exc:
            raise _crossing(exc) from None
        self.runner = self.batcher.runner
        loaded = {"load_time": time.perf_counter() - started,
                  "memory_usage": self.runner.memory_bytes()}
        release()  # the old runner's objects were frozen with the heap: collectable again
        settle()
        return loaded

    async def stats(self) -> dict[str, Any]:
        """The batcher's counters, with its recent latency samples for merging."""
        if self.batcher is None:
            return {}
        return {
            **self.batcher.stats(),
            "latency_samples": list(self.batcher.latencies),
            "memory_usage": self.runner.memory_bytes(),
        }

    async def stop(self) -> dict[str, Any]:
        """Drain in-flight requests, then free the device memory; answer the bytes freed."""
        freed = self.runner.memory_bytes()
        if self.batcher is not None:
            await self.batcher.drain()  # the lane's calls in flight are answered first
        if self._lane is not None:
            await self._lane.finish()
            self._lane = None
        if self.batcher is not None:
            self.batcher.close()
        release()  # the model was frozen with the heap: its cycles must be collectable again
        self.runner.close()
        settle()
        return {"memory_freed": freed - self.runner.memory_bytes()}
