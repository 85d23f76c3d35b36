"""The profiler as the server uses it: sessions, the frames of Dask nodes and external agents,
clients, latest readings, subscriptions and exports. Knows nothing of HTTP, nor of gRPC: the
gRPC service (grpc_server.py) is built over it, never the reverse (it hands the agents' frames
in as the `gswarm.v1.Frame` messages they arrived as)."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from distributed import Client

from ..core.aio import cancel_and_wait
from ..core.db import Database
from ..core.errors import Conflict, InvalidRequest, NotFound
from ..core.names import is_model_name
from ..core.profiler_api import MAX_FREQUENCY_MS, MIN_FREQUENCY_MS
from ._proto import profiler_pb2 as pb
from .collector import DaskCollector
from .frames import ALL_METRICS, Frame, csv_rows, keep_metrics
from .hub import ClientState, FrameFilter, Hub, Subscription
from .loop import IDLE_INTERVAL_MS
from .node import SessionSpec, plan_for
from .sessions import RUNNING, Session, SessionStore

log = logging.getLogger(__name__)

DEFAULT_FREQUENCY_MS = 1000
FLUSH_EVERY_S = 0.2
AGENT_CATCH_UP_S = 3.0


class Profiler:
    """Owns the session store, the Dask collector and the hub. `client` answers the runtime's
    current Dask client; `node_names` the Dask nodes known now. The gRPC service over it
    (grpc_server.GrpcServer) is built and started by the app."""

    def __init__(
        self,
        db: Database,
        root: Path | str,
        client: Callable[[], Client | None] = lambda: None,
        node_names: Callable[[], list[str]] = list,
        sync_interval_s: float = 0.25,
        idle_interval_ms: int = IDLE_INTERVAL_MS,
    ) -> None:
        self.store = SessionStore(db, Path(root))
        self.hub = Hub(self._record, self._record_message)
        self.collector = DaskCollector(self, client, sync_interval_s, idle_interval_ms)
        self.node_names = node_names
        self.idle_interval_ms = idle_interval_ms
        self.stale_after = max(5.0, 5 * idle_interval_ms / 1000.0)
        self._flusher: asyncio.Task[None] | None = None
        self._stops: set[asyncio.Task[dict[str, Any]]] = set()  # stops under way

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        interrupted = await self.store.recover()
        if interrupted:
            log.warning("gswarm: profiling sessions interrupted by a restart: %s", interrupted)
        self._flusher = asyncio.create_task(self._flush_loop(), name="gswarm-profiler-flush")
        await self.collector.start()

    async def stop(self) -> None:
        for task in list(self._stops):  # their sessions stay running: the next start recovers
            await cancel_and_wait(task)
        await self.collector.stop()
        await cancel_and_wait(self._flusher)
        self.hub.close()
        self.store.close()

    # -- sessions ------------------------------------------------------------------------------

    async def start_session(
        self,
        name: str,
        sampling_frequency_ms: int | None = None,
        nodes: list[str] | None = None,
        metrics: list[str] | None = None,
        tags: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Start recording `name` on `nodes` (every node when None); answers the session record.

        `tags` (e.g. `{"execution_count": 12}`) are kept with the session and on each of its
        frames."""
        if not is_model_name(name):
            raise InvalidRequest(
                f"invalid session name {name!r}: use letters, digits, '.', '_' or '-'",
                {"field": "name"},
            )
        frequency = DEFAULT_FREQUENCY_MS if sampling_frequency_ms is None else sampling_frequency_ms
        if not MIN_FREQUENCY_MS <= frequency <= MAX_FREQUENCY_MS:
            raise InvalidRequest(
                f"sampling_frequency_ms must be from {MIN_FREQUENCY_MS} to {MAX_FREQUENCY_MS}, "
                f"got {frequency}",
                {"field": "sampling_frequency_ms", "minimum": MIN_FREQUENCY_MS,
                 "maximum": MAX_FREQUENCY_MS},
            )
        if metrics:
            unknown = sorted(set(metrics) - set(ALL_METRICS))
            if unknown:
                raise InvalidRequest(
                    f"unknown metrics {unknown}; known: {list(ALL_METRICS)}", {"field": "metrics"}
                )
        if nodes:
            known = self.known_nodes()
            missing = [n for n in nodes if n not in known]
            if missing:
                raise NotFound(f"unknown nodes {missing}", {"field": "nodes", "nodes": missing})
        session = self.store.create(
            name,
            frequency,
            sorted(set(nodes)) if nodes else None,
            list(metrics) if metrics else None,
            tags,
        )
        await self._push_plans()
        return session.record()

    async def stop_session(self, name: str) -> dict[str, Any]:
        """Stop `name`, after collecting every frame sampled for it; answers record and summary.
        A stop while another one is under way (waiting for frames or summarising) is a Conflict.
        Once begun, a stop runs to its end even if its caller goes (a gRPC client cancelling);
        summarising reads the session's file on a thread. If it fails, the session runs on."""
        session = self.store.running.get(name) or self.store.closing.get(name)
        if session is None:
            self.store.get(name)  # NotFound when it never existed
            raise Conflict(f"profiling session {name!r} is not running", {"name": name})
        if session.stopping_at is not None:
            raise Conflict(f"profiling session {name!r} is stopping", {"name": name})
        session.stopping_at = time.time()
        task = asyncio.ensure_future(self._stop(session, session.stopping_at))
        self._stops.add(task)
        task.add_done_callback(self._stopped)
        return await asyncio.shield(task)

    async def _stop(self, session: Session, stopping_at: float) -> dict[str, Any]:
        await self._push_plans()
        await self._agents_caught_up(session)
        try:
            finished = await self.store.finish(session.name, stopping_at)
        except Exception:
            session.stopping_at = None  # recording again: the nodes sample it again
            await self._push_plans()
            raise
        return await self._detail(finished)

    def _stopped(self, task: asyncio.Task[dict[str, Any]]) -> None:
        self._stops.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a caller gone meanwhile does not leave it unread

    def sessions(self) -> list[dict[str, Any]]:
        return [s.record() for s in self.store.all()]

    async def session(self, name: str) -> dict[str, Any]:
        """The record and summary of `name` (running: so far, its file read on a thread)."""
        return await self._detail(self.store.get(name))

    def frames(self, name: str) -> Iterator[Frame]:
        session = self.store.get(name)
        self.store.flush()
        return self.store.frames(session)

    def csv(self, name: str) -> str:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(csv_rows(self.frames(name)))
        return out.getvalue()

    def plot(self, name: str, metrics: list[str] | None = None) -> bytes:
        """A PNG of `name`: one panel per metric, one line per node and device."""
        from .plot import plot_frames

        return plot_frames(
            list(self.frames(name)), metrics=metrics, title=f"profiling session {name}"
        )

    async def _detail(self, session: Session) -> dict[str, Any]:
        return {**session.record(), "summary": await self.store.summary(session)}

    # -- what the API shows -----------------------------------------------------------------

    def status(self, grpc_port: int | None = None) -> dict[str, Any]:
        """What the profiler does now; `grpc_port` is the port its gRPC service is bound to."""
        active = [s for s in self.store.running.values() if s.stopping_at is None]
        clients = self.clients()
        nvlink = any(
            gpu.get("nvlink_rx_bytes_per_s") is not None
            for frame in self._latest_frames().values()
            for gpu in frame.get("gpus") or ()
        )
        return {
            "is_profiling": bool(active),
            "active_sessions": [
                {
                    "name": s.name,
                    "start_time": s.record()["start_time"],
                    "frames_collected": s.frames_collected,
                    "sampling_frequency_ms": s.sampling_frequency_ms,
                    "nodes": s.nodes,
                }
                for s in active
            ],
            "connected_clients": sum(1 for c in clients if c["status"] == "connected"),
            "enable_bandwidth_profiling": True,
            "enable_nvlink_profiling": nvlink,
            "sampling_frequency_ms": min(
                (s.sampling_frequency_ms for s in active), default=self.idle_interval_ms
            ),
            "grpc_port": grpc_port,
        }

    def clients(self) -> list[dict[str, Any]]:
        now = time.time()
        return [
            c.record(now, self.stale_after) for c in sorted(self.hub.clients.values(), key=_key)
        ]

    def latest(
        self, nodes: list[str] | None = None, metrics: list[str] | None = None
    ) -> list[Frame]:
        """The latest frame of every client (or of `nodes`)."""
        return [
            keep_metrics(frame, metrics)
            for node, frame in sorted(self._latest_frames().items())
            if not nodes or node in nodes
        ]

    def _latest_frames(self) -> dict[str, Frame]:
        latest = ((node, self.hub.latest_frame(node)) for node in list(self.hub.latest))
        return {node: frame for node, frame in latest if frame is not None}

    def subscribe(
        self,
        sessions: list[str] | None = None,
        nodes: list[str] | None = None,
        metrics: list[str] | None = None,
    ) -> Subscription:
        return self.hub.subscribe(FrameFilter.of(sessions, nodes, metrics))

    def known_nodes(self) -> set[str]:
        return set(self.node_names()) | set(self.hub.clients)

    # -- frames in: Dask nodes (collector) and agents (gRPC) ---------------------------------

    def acks(self) -> dict[str, tuple[str, int]]:
        return {c.client_id: (c.instance, c.last_seq) for c in self.hub.clients.values()}

    def specs(self) -> list[SessionSpec]:
        return [
            (s.name, s.sampling_frequency_ms, s.nodes)
            for s in self.store.running.values()
            if s.stopping_at is None
        ]

    def plan(self, node: str) -> dict[str, int]:
        return plan_for(node, self.specs())

    def accept_node(self, report: dict[str, Any], kind: str) -> tuple[int, int]:
        """A node's report: `{"node", "info": {hostname, gpus, dropped}, "frames": [...]}`."""
        state = self.hub.client(report["node"], kind)
        info = report.get("info") or {}
        state.hostname = info.get("hostname", state.hostname)
        state.gpus = info.get("gpus", state.gpus)
        state.dropped_on_node = int(info.get("dropped", state.dropped_on_node))
        return self.hub.ingest(state, report.get("frames") or ())

    def connect_agent(
        self, name: str, hostname: str, instance: str, gpus: list[dict[str, Any]]
    ) -> tuple[str, dict[str, int], int]:
        """An agent announces itself: answers (node id, plan, last sequence number held)."""
        node_id = name or hostname or "agent"
        taken = self.hub.clients.get(node_id)
        if node_id in self.node_names() or (taken is not None and taken.kind != "agent"):
            node_id = f"{node_id}-{instance[:6]}"
        state = self.hub.client(node_id, "agent")
        state.hostname, state.gpus = hostname, gpus
        if state.instance != instance:
            state.instance, state.last_seq = instance, 0
        state.last_update = time.time()
        return node_id, self.plan(node_id), state.last_seq

    def agent(self, node_id: str) -> ClientState | None:
        state = self.hub.clients.get(node_id)
        return state if state is not None and state.kind == "agent" else None

    def _record(self, frame: Frame) -> list[str]:
        """Write `frame` to each running session it was taken for; answer their names."""
        kept = []
        for name in frame.get("sessions") or ():
            session = self.store.running.get(name)
            if session is None or not session.covers(frame["node"]):
                continue
            if session.stopping_at is not None and frame["timestamp_unix_s"] > session.stopping_at:
                continue
            self.store.append(session, keep_metrics(frame, session.metrics))
            kept.append(name)
        return kept

    def _record_message(self, message: pb.Frame) -> list[str]:
        """`_record` for a gRPC agent's `gswarm.v1.Frame`: written as it came, serialized once."""
        kept: list[str] = []
        names = message.sessions
        if not names:
            return kept
        running, payload = self.store.running, b""
        for name in names:
            session = running.get(name)
            if session is None or not session.covers(message.node):
                continue
            if (session.stopping_at is not None
                    and message.timestamp_unix_s > session.stopping_at):
                continue
            payload = payload or message.SerializeToString()
            self.store.append_message(session, payload)
            kept.append(name)
        return kept

    async def _push_plans(self) -> None:
        """Tell the Dask nodes now rather than at the next pull (agents learn at their next ack)."""
        try:
            await self.collector.sync()
        except Exception as exc:
            log.warning("gswarm: could not reach the nodes to change their sampling plan: %s", exc)

    async def _agents_caught_up(self, session: Session) -> None:
        """Wait briefly until each connected agent of `session` sent a frame taken after stop."""
        assert session.stopping_at is not None
        deadline = time.monotonic() + AGENT_CATCH_UP_S
        now = time.time()
        agents = [
            c
            for c in self.hub.clients.values()
            if c.kind == "agent"
            and session.covers(c.client_id)
            and c.connected(now, self.stale_after)
        ]
        while agents and time.monotonic() < deadline:
            agents = [
                a
                for a in agents
                if (self.hub.latest_time(a.client_id) or 0) < session.stopping_at
            ]
            if agents:
                await asyncio.sleep(0.05)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            try:  # writing the held lines and fsync off the event loop
                await asyncio.to_thread(self.store.flush)
            except OSError as exc:
                log.error("gswarm: writing profiling frames failed: %s", exc)


def _key(c: ClientState) -> tuple[str, str]:
    return (c.kind, c.client_id)


__all__ = ["DEFAULT_FREQUENCY_MS", "MAX_FREQUENCY_MS", "MIN_FREQUENCY_MS", "RUNNING", "Profiler"]
