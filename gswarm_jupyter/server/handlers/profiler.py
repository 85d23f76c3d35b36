"""Profiler routes: sessions, clients, latest frames, the `/ws/profiling` stream, and the
profiler's Prometheus gauges. Thin: the domain is `profiler.service.Profiler`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ...core.pagination import PageQuery, paginate
from ...core.profiler_api import (
    ClientList,
    LatestFrames,
    LatestQuery,
    ProfilerStatus,
    SessionDetail,
    SessionList,
    SessionQuery,
    SessionRecord,
    SessionSummary,
    StartProfiling,
    StopProfiling,
)
from ...profiler.frames import readings
from ...profiler.hub import Subscription
from ...profiler.service import Profiler
from ..base import GswarmHandler
from ..context import GswarmContext
from ..routes import CONTROL, MODEL, Op, PathParam, Route, resource_links
from ..websocket import GswarmSocket, socket_op

PROFILER = f"{CONTROL}/profiler"


class ProfilerHandler(GswarmHandler):
    auth_resource = "gswarm:profiler"

    @property
    def profiler(self) -> Profiler:
        return self.gswarm.profiler


class StatusHandler(ProfilerHandler):
    def get(self) -> None:
        grpc = self.gswarm.profiler_grpc
        self.reply(self.profiler.status(None if grpc is None else grpc.port))


class StartHandler(ProfilerHandler):
    async def post(self) -> None:
        body = self.body(StartProfiling)
        record = await self.profiler.start_session(
            body.name, body.sampling_frequency_ms, body.nodes, body.metrics, body.tags
        )
        location = f"{self.base_url.rstrip('/')}{PROFILER}/profiling/sessions/{record['name']}"
        self.reply(record, 201, {"Location": location})


class StopHandler(ProfilerHandler):
    async def post(self) -> None:
        self.reply(await self.profiler.stop_session(self.body(StopProfiling).name))


class SessionsHandler(ProfilerHandler):
    def get(self) -> None:
        self.reply(paginate(self.profiler.sessions(), self.query(PageQuery), "sessions"))


class SessionHandler(ProfilerHandler):
    async def get(self, name: str) -> None:
        query = self.query(SessionQuery)
        profiler = self.profiler
        detail = await profiler.session(name)  # NotFound first, whatever the format
        # Reading a session's frames and drawing them take long: off the event loop.
        if query.format == "csv":
            text = await asyncio.to_thread(profiler.csv, name)
            self._download(text.encode(), "text/csv; charset=utf-8", f"{name}.csv")
        elif query.format == "png":
            png = await asyncio.to_thread(profiler.plot, name, _split(query.metrics))
            self._download(png, "image/png", f"{name}.png")
        else:
            frames = await asyncio.to_thread(lambda: list(profiler.frames(name)))
            self.reply({**detail, "frames": frames})

    def _download(self, data: bytes, content_type: str, filename: str) -> None:
        self.set_header("Content-Disposition", f'attachment; filename="{filename}"')
        self.finish(data, set_content_type=content_type)


class ClientsHandler(ProfilerHandler):
    def get(self) -> None:
        self.reply(paginate(self.profiler.clients(), self.query(PageQuery), "clients"))


class LatestHandler(ProfilerHandler):
    def get(self) -> None:
        query = self.query(LatestQuery)
        frames = self.profiler.latest(_split(query.nodes), _split(query.metrics))
        self.reply({"frames": frames})


class ProfilingSocket(GswarmSocket):
    """Frames as they arrive: `{"event": "frame", "data": <frame>, "timestamp"}`. The client may
    send `{"sessions": [...], "nodes": [...], "metrics": [...]}` to filter (empty lists: all)."""

    auth_resource = "gswarm:profiler"
    subscription: Subscription | None = None
    pump: asyncio.Task[None] | None = None

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)
        self._follow(self.gswarm.profiler.subscribe())

    def on_json(self, data: dict[str, Any]) -> None:
        wanted = {k: data.get(k) for k in ("sessions", "nodes", "metrics")}
        bad = [k for k, v in wanted.items() if v is not None and not _str_list(v)]
        unknown = sorted(set(data) - set(wanted))
        if bad or unknown:
            self.send_event(
                "error",
                {
                    "code": "INVALID_REQUEST",
                    "message": "send {sessions?, nodes?, metrics?} as " "lists of strings",
                    "details": {"field": (bad or unknown)[0]},
                },
            )
            return
        self._follow(self.gswarm.profiler.subscribe(**wanted))
        self.send_event("filter", wanted)

    def on_close(self) -> None:
        self._follow(None)

    def _follow(self, subscription: Subscription | None) -> None:
        if self.subscription is not None:
            self.subscription.close()
        if self.pump is not None:
            self.pump.cancel()
        self.subscription, self.pump = subscription, None
        if subscription is not None:
            self.pump = asyncio.ensure_future(self._send(subscription))

    async def _send(self, subscription: Subscription) -> None:
        async for frame in subscription:
            if not self.send_event("frame", frame):
                subscription.close()
                return


def _split(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def prometheus_families(ctx: GswarmContext) -> Iterator[Any]:
    """The profiler's latest reading of every client and device, as gauges."""
    profiler = ctx.profiler
    families: dict[str, GaugeMetricFamily] = {}
    for frame in profiler.latest():
        for device, metric, value in readings(frame):
            name = "gswarm_profiler_" + metric.replace("_per_s", "_per_second")
            family = families.get(name)
            if family is None:
                family = families[name] = GaugeMetricFamily(
                    name, f"Profiler's latest {metric.replace('_', ' ')}", labels=["node", "device"]
                )
            family.add_metric([frame["node"], device], value)
    yield from families.values()
    status = profiler.status()
    yield GaugeMetricFamily(
        "gswarm_profiler_active_sessions",
        "Profiling sessions running",
        value=len(status["active_sessions"]),
    )
    clients = GaugeMetricFamily(
        "gswarm_profiler_client_connected",
        "1 if the sampler reported lately",
        labels=["node", "kind"],
    )
    frames = CounterMetricFamily(
        "gswarm_profiler_frames_received", "Frames the server accepted", labels=["node"]
    )
    for client in profiler.clients():
        clients.add_metric(
            [client["client_id"], client["kind"]], float(client["status"] == "connected")
        )
        frames.add_metric([client["client_id"]], float(client["frames_received"]))
    yield clients
    yield frames


routes = [
    Route(
        f"{PROFILER}/status",
        StatusHandler,
        {"get": Op("Profiling state: active sessions, connected clients", ProfilerStatus)},
        tag="profiler",
    ),
    Route(
        f"{PROFILER}/profiling/start",
        StartHandler,
        {
            "post": Op(
                "Start a named profiling session (sessions run concurrently)",
                SessionRecord,
                body=StartProfiling,
                status=201,
                links=resource_links(f"{PROFILER}/profiling/sessions/{{name}}", "name", "name",
                                     delete=False),
                errors=(400, 404, 409),
            )
        },
        tag="profiler",
    ),
    Route(
        f"{PROFILER}/profiling/stop",
        StopHandler,
        {
            "post": Op(
                "Stop a session; answers its summary per node and device",
                SessionSummary,
                body=StopProfiling,
                errors=(400, 404, 409),
            )
        },
        tag="profiler",
    ),
    Route(
        f"{PROFILER}/profiling/sessions",
        SessionsHandler,
        {
            "get": Op(
                "Every session, running and finished", SessionList, query=PageQuery, errors=(400,)
            )
        },
        tag="profiler",
    ),
    Route(
        f"{PROFILER}/profiling/sessions/{{name}}",
        SessionHandler,
        {
            "get": Op(
                "A session's summary and frames (format=json), its frames as CSV (format=csv), "
                "or a plot (format=png)",
                SessionDetail,
                query=SessionQuery,
                errors=(400, 404),
                alt_content=("text/csv", "image/png"),
            )
        },
        tag="profiler",
        params={"name": PathParam("profiling session name", MODEL.pattern, "fuzz-session")},
    ),
    Route(
        f"{PROFILER}/clients",
        ClientsHandler,
        {"get": Op("Every sampler: Dask nodes' and external agents'", ClientList, query=PageQuery)},
        tag="profiler",
    ),
    Route(
        f"{PROFILER}/metrics/latest",
        LatestHandler,
        {"get": Op("The latest frame of every client", LatestFrames, query=LatestQuery)},
        tag="profiler",
    ),
    Route(
        f"{CONTROL}/ws/profiling",
        ProfilingSocket,
        {
            "get": socket_op(
                "WebSocket: frames as they arrive (send {sessions, nodes} to filter)"
            )
        },
        tag="profiler",
    ),
]
