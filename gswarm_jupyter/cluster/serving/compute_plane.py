"""The compute plane's domain: load and unload models (a service each), synchronous, async
(through the task queue) and batch inference, sessions that pin a model and a replica (both kept
in the database, so a restarted server keeps them), and the request counters behind `/metrics`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ...core.aio import cancel_and_wait
from ...core.clock import iso, iso_or_none
from ...core.compute_store import RequestMap, Session, SessionStore
from ...core.errors import (
    Conflict,
    GswarmError,
    InternalError,
    InvalidRequest,
    ModelAlreadyLoaded,
    ModelNotFound,
    NotImplementedFeature,
)
from ...core.nodes import NodeDirectory
from ...core.serving_api import (
    AsyncInferenceRequest,
    HistoryQuery,
    InferenceRequest,
    ModelLoad,
    ServiceConfig,
    SessionCreate,
)
from ...core.stats import RequestLog
from ...core.validation import validate
from ..runtime.executor import Job, TaskExecutor
from ..storage.weights import WeightSource
from .replicas import Replica
from .services import ServiceManager

TASK_TYPE = "inference"
METRICS_WINDOW = 60.0  # seconds of the sliding window behind /metrics
SWEEP_INTERVAL = 5.0  # how often expired sessions are forgotten

_ASYNC_STATUS = {"pending": "queued"}

# `quantize(model_id, precision) -> the name of the quantised model` (made once).
Quantizer = Callable[[str, str], Awaitable[str]]


class ComputePlane:
    def __init__(
        self,
        services: ServiceManager,
        weights: WeightSource,
        sessions: SessionStore,
        requests: RequestMap,
        tasks: TaskExecutor,
        nodes: NodeDirectory,
        clock: Callable[[], float] = time.time,
        quantize: Quantizer | None = None,
    ) -> None:
        self.services = services
        self.weights = weights
        self.sessions = sessions
        self.requests = requests
        self.tasks = tasks
        self.nodes = nodes
        self.clock = clock
        self.log = RequestLog(clock=clock)
        self.active = 0
        self._sweeper: asyncio.Task[None] | None = None
        # Loading with enable_quantization goes through the optimiser (the trainer), if any.
        self.quantize = quantize
        if tasks is not None:
            tasks.register(TASK_TYPE, self._run_async)

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="gswarm-sessions")

    async def stop(self) -> None:
        await cancel_and_wait(self._sweeper)

    # -- models -------------------------------------------------------------------------------

    async def load(self, req: ModelLoad) -> dict[str, Any]:
        """Register the model if needed, then start a service; answers once it can infer."""
        model = await self.weights.resolve(req.model_id, req.model_path, req.model_type)
        precision = "int8" if req.enable_quantization else "bf16" if req.enable_mixed_precision else None
        if precision is not None:
            # The same path as POST /models/{id}/optimize: the quantised model is a registry
            # model of its own (`<model>-<precision>`), made once, and that is what is served.
            if self.quantize is None:
                raise NotImplementedFeature(
                    "quantised loading needs the optimiser, which this server does not run",
                    {"field": "enable_quantization" if req.enable_quantization else "enable_mixed_precision"},
                )
            model = await self.weights.resolve(await self.quantize(model.name, precision), None, None)
        if self.services.serving(model.name):
            raise ModelAlreadyLoaded(f"model {model.name!r} is already loaded", {"model_id": model.name})
        config = ServiceConfig(
            replicas=req.replicas,
            load_balancing=req.load_balancing,
            max_batch_size=req.max_batch_size,
            batch_timeout_ms=req.batch_timeout_ms,
            timeout=req.timeout,
            framework=req.framework,
        )
        started = time.perf_counter()
        service = await self.services.start(model, config, req.nodes, req.device)
        return {
            "model_id": model.name,
            "model_type": model.model_type,
            "message": f"{model.name} loaded with {config.framework} on "
            + ", ".join(f"{r.node}:{r.device}" for r in service.replicas),
            "memory_allocated": service.memory_usage,
            "load_time": time.perf_counter() - started,
            "service_id": service.service_id,
            "framework": config.framework,
            "replicas": [r.record() for r in service.replicas],
        }

    def loaded(self) -> list[dict[str, Any]]:
        by_model: dict[str, list[Any]] = {}
        for service in self.services.list():
            by_model.setdefault(service.model.name, []).append(service)
        out = []
        for name, services in by_model.items():
            statuses = {s.status for s in services}
            status = "loaded" if statuses & {"running"} else next(iter(sorted(statuses)))
            times = [s.load_time for s in services if s.load_time is not None]
            out.append({
                "model_id": name,
                "model_type": services[0].model.model_type,
                "status": status,
                "memory_usage": sum(s.memory_usage for s in services),
                "load_time": max(times) if times else None,
                "services": [s.service_id for s in services],
            })
        return out

    async def unload(self, model_id: str) -> dict[str, Any]:
        """Stop the model's services (the registry entry stays); `Conflict` while sessions pin it."""
        services = self.services.list(model_id)
        if not services:
            raise ModelNotFound(f"model {model_id!r} is not loaded", {"model_id": model_id})
        pinned = self.sessions.live_for_model(model_id)
        if pinned:
            raise Conflict(
                f"model {model_id!r} is pinned by {len(pinned)} session(s); end them first",
                {"model_id": model_id, "sessions": [s.session_id for s in pinned]},
            )
        stopped = [await self.services.stop(s.service_id) for s in services]
        return {
            "model_id": model_id,
            "status": "unloaded",
            "services": [s["service_id"] for s in stopped],
            "memory_freed": sum(s["memory_freed"] for s in stopped),
        }

    # -- inference ----------------------------------------------------------------------------

    async def infer(self, req: InferenceRequest, request_id: str | None = None) -> dict[str, Any]:
        """One request through the gateway; counted in the metrics whatever its outcome."""
        request_id = request_id or RequestMap.new_id()
        session = self._session_for(req)
        options = req.options.model_dump(exclude_none=True)
        started = time.perf_counter()
        self.active += 1
        ok, rows = False, 0
        try:
            result, replica = await self.services.infer(
                req.model_id, req.input_data, options, timeout=req.timeout,
                service_id=req.service_id, prefer=self._pinned(session),
            )
            if session is not None and session.replica_id != replica.replica_id:
                self.sessions.pin(session.session_id, replica.replica_id)
            ok, rows = True, len(result["output_data"])
        finally:
            self.active -= 1
            self.log.record(time.perf_counter() - started, ok, rows)
        return {
            "request_id": request_id,
            "output_data": result["output_data"],
            # generated rows decoded, for language models with a tokenizer (else null)
            "output_text": result.get("output_text"),
            "inference_time": time.perf_counter() - started,
            "tokens_generated": result["tokens_generated"],
            "memory_used": result["memory_used"],
            "service_id": self.services.service_of(replica).service_id,
            "node": replica.node,
            "device": replica.device,
            "replica_id": replica.replica_id,
            "session_id": session.session_id if session else None,
        }

    def _pinned(self, session: Session | None) -> Replica | None:
        """The replica the session stays on, if it has one that still exists."""
        if session is None or session.replica_id is None:
            return None
        return self.services.find_replica(session.replica_id)

    def _session_for(self, req: InferenceRequest) -> Session | None:
        if req.session_id is None:
            return None
        session = self.sessions.get(req.session_id)
        if session.model_id != req.model_id:
            raise InvalidRequest(
                f"session {session.session_id} is for model {session.model_id}, not {req.model_id}",
                {"field": "session_id"},
            )
        return session

    async def batch(self, requests: list[dict[str, Any]]) -> dict[str, Any]:
        """Every request on its own: a bad one fails alone. `results[i]` is an inference result
        with `error: null`, or only `{error}` when request i failed."""
        started = time.perf_counter()

        async def one(index: int, raw: dict[str, Any]) -> dict[str, Any]:
            try:
                req = validate(InferenceRequest, raw, f"requests[{index}]")
                return {**await self.infer(req), "error": None}
            except GswarmError as exc:
                return {"error": exc.to_dict()}
            except Exception as exc:
                error = InternalError(f"request {index} failed: {type(exc).__name__}: {exc}")
                return {"error": error.to_dict()}

        results = await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))
        ok = sum(1 for r in results if r["error"] is None)
        return {"results": results, "total_time": time.perf_counter() - started,
                "succeeded": ok, "failed": len(results) - ok}

    def submit(self, req: AsyncInferenceRequest) -> dict[str, Any]:
        """Queue the request as an `inference` task; answers `queued` with an estimate."""
        self.services.live_replicas(req.model_id, req.service_id)  # unknown model: 404 now
        if req.session_id is not None:
            self._session_for(req)
        request_id = RequestMap.new_id()
        body = req.model_dump(exclude={"priority"})
        task = self.tasks.submit(
            TASK_TYPE, req.model_id, priority=req.priority,
            resources={"models": [req.model_id]},
            params={"request_id": request_id},
            payload={"request": body},
        )
        self.requests.add(request_id, task.task_id, req.model_id)
        recent = self.log.window(METRICS_WINDOW)["latency_p50"]
        estimate = None
        if recent is not None:  # only an estimate needs the task's place in the queue
            waiting = 1 + (self.tasks.queue.position(task.task_id) or 0)
            estimate = iso(self.clock() + recent * waiting)
        return {
            "request_id": request_id,
            "status": "queued",
            "estimated_completion": estimate,
            "task_id": task.task_id,
        }

    async def _run_async(self, job: Job) -> dict[str, Any]:
        # A task queued before payloads existed carries its request in its params.
        body = job.payload.get("request", job.params.get("request"))
        req = InferenceRequest.model_validate(body)
        result = await self.infer(req, job.params["request_id"])
        return result

    def request_status(self, request_id: str) -> dict[str, Any]:
        task = self.tasks.queue.get(self.requests.task_id(request_id))
        result = task.result if isinstance(task.result, dict) else {}
        return {
            "request_id": request_id,
            "status": _ASYNC_STATUS.get(task.status, task.status),
            "output_data": result.get("output_data"),
            "output_text": result.get("output_text"),
            "inference_time": result.get("inference_time"),
            "completion_time": iso_or_none(task.completed_at),
            "error": task.error,
            "task_id": task.task_id,
            "service_id": result.get("service_id"),
            "node": result.get("node"),
        }

    # -- sessions -----------------------------------------------------------------------------

    def open_session(self, req: SessionCreate) -> dict[str, Any]:
        if not self.services.serving(req.model_id):
            raise ModelNotFound(f"model {req.model_id!r} is not loaded", {"model_id": req.model_id})
        return self.sessions.create(req.user_id, req.model_id, req.ttl_seconds).record()

    def close_session(self, session_id: str) -> dict[str, Any]:
        session = self.sessions.delete(session_id)
        return {**session.record(), "status": "ended"}

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            self.sessions.sweep()

    # -- metrics ------------------------------------------------------------------------------

    def metrics(self) -> dict[str, Any]:
        window = self.log.window(METRICS_WINDOW)
        gpus = [g for n in self.nodes.online() for g in n.report.get("gpus", [])]
        queued = len(self.tasks.queue.tasks(status="pending", task_type=TASK_TYPE))
        return {
            "metrics": {
                "gpu_utilization": _mean(g.get("usage") for g in gpus),
                "memory_utilization": self._memory_utilization(gpus),
                "temperature": _mean(g.get("temperature") for g in gpus),
                "power_usage": _sum(g.get("power_usage") for g in gpus),
                "throughput": window["throughput"],
                "latency": window["latency_mean"],
                "latency_p50": window["latency_p50"],
                "latency_p99": window["latency_p99"],
                "rows_per_second": window["rows_per_second"],
                "window_seconds": METRICS_WINDOW,
                "active_requests": self.active,
                "queued_requests": queued,
                "total_requests": self.log.total,
                "successful_requests": self.log.successful,
                "failed_requests": self.log.failed,
                "loaded_models": len({s.model.name for s in self.services.list()}),
            }
        }

    def _memory_utilization(self, gpus: list[dict[str, Any]]) -> float | None:
        if gpus:
            used = [g.get("memory_used") for g in gpus]
            total = [g.get("memory_total") for g in gpus]
        else:
            dram = [n.devices.get("dram", {}) for n in self.nodes.online()]
            used = [d.get("used") for d in dram]
            total = [d.get("total") for d in dram]
        if not total or None in used or None in total or not sum(total):  # type: ignore[arg-type]
            return None
        return sum(used) / sum(total)  # type: ignore[arg-type]

    def history(self, query: HistoryQuery) -> dict[str, Any]:
        end = _epoch(query.end_time, "end_time") if query.end_time else self.clock()
        start = _epoch(query.start_time, "start_time") if query.start_time else end - 3600
        if end <= start:
            raise InvalidRequest("end_time must be after start_time", {"field": "end_time"})
        if (end - start) / query.interval > 10_000:
            raise InvalidRequest("too many buckets: widen interval", {"field": "interval"})
        buckets = self.log.history(start, end, query.interval)
        for b in buckets:
            b["start"], b["end"] = iso(b["start"]), iso(b["end"])
        return {"start_time": iso(start), "end_time": iso(end), "interval": query.interval,
                "buckets": buckets}


def _epoch(text: str, field: str) -> float:
    from datetime import datetime

    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidRequest(f"{field}: expected epoch seconds or ISO 8601, got {text!r}",
                             {"field": field}) from None


def _mean(values: Any) -> float | None:
    present = [float(v) for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _sum(values: Any) -> float | None:
    present = [float(v) for v in values if v is not None]
    return sum(present) if present else None
