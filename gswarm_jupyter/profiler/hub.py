"""Where frames arrive: dropped if already held (by instance and sequence number), kept as the
client's latest, written to the sessions they were taken for, and fanned out to subscribers.

Frames arrive as dicts (Dask nodes) or as the gRPC agents' `gswarm.v1.Frame` messages. A message
stays one through its ingest: deduplicated on its own instance and sequence number, written to
its sessions as it came, kept as the client's latest and made into a dict only when someone reads
it (or at once while there are subscribers). Readers see dicts only (`latest_frame`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..core.clock import iso_or_none
from ._proto import profiler_pb2 as pb
from .convert import frame_from_proto
from .frames import Frame, keep_metrics

SUBSCRIBER_QUEUE = 10_000


@dataclass
class ClientState:
    """One sampler the server hears from: a Dask node's or an external agent's."""

    client_id: str
    kind: str  # dask | agent
    hostname: str | None = None
    instance: str = ""
    last_seq: int = 0
    gpus: list[dict[str, Any]] = field(default_factory=list)
    last_update: float | None = None
    frames_received: int = 0
    duplicates: int = 0
    dropped_on_node: int = 0

    def connected(self, now: float, stale_after: float) -> bool:
        return self.last_update is not None and now - self.last_update <= stale_after

    def record(self, now: float, stale_after: float) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "kind": self.kind,
            "hostname": self.hostname,
            "gpus": [
                {
                    "device_id": g.get("device_id"),
                    "name": g.get("name"),
                    "memory_total": g.get("memory_total"),
                    "compute_capability": g.get("compute_capability"),
                }
                for g in self.gpus
            ],
            "last_update": iso_or_none(self.last_update),
            "status": "connected" if self.connected(now, stale_after) else "disconnected",
            "frames_received": self.frames_received,
            "duplicates": self.duplicates,
            "dropped_on_node": self.dropped_on_node,
        }


@dataclass(frozen=True)
class FrameFilter:
    sessions: frozenset[str] = frozenset()
    nodes: frozenset[str] = frozenset()
    metrics: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        sessions: Iterable[str] | None = None,
        nodes: Iterable[str] | None = None,
        metrics: Iterable[str] | None = None,
    ) -> FrameFilter:
        return cls(frozenset(sessions or ()), frozenset(nodes or ()), tuple(metrics or ()))

    def apply(self, frame: Frame) -> Frame | None:
        if self.nodes and frame["node"] not in self.nodes:
            return None
        if self.sessions and not self.sessions.intersection(frame.get("sessions") or ()):
            return None
        return keep_metrics(frame, self.metrics)


class Subscription:
    """Frames as they arrive, through a bounded queue (a subscriber too slow loses its oldest)."""

    def __init__(self, hub: Hub, filter: FrameFilter) -> None:
        self.hub = hub
        self.filter = filter
        self.queue: asyncio.Queue[Frame | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self.lost = 0

    def offer(self, frame: Frame) -> None:
        chosen = self.filter.apply(frame)
        if chosen is None:
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.lost += 1
        self.queue.put_nowait(chosen)

    def close(self) -> None:
        self.hub.subscribers.discard(self)
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[Frame]:
        while True:
            frame = await self.queue.get()
            if frame is None:
                return
            yield frame


class Arrived:
    """A frame kept as its message arrived, with the sessions that recorded it."""

    __slots__ = ("message", "sessions")

    def __init__(self, message: pb.Frame, sessions: list[str]) -> None:
        self.message = message
        self.sessions = sessions

    def frame(self) -> Frame:
        frame = frame_from_proto(self.message)
        frame["sessions"] = self.sessions
        return frame


class Hub:
    """Frames in, deduplicated; `record(frame)` and `record_message(message)` decide which
    sessions keep each (and write it there)."""

    def __init__(
        self,
        record: Callable[[Frame], list[str]],
        record_message: Callable[[pb.Frame], list[str]],
    ) -> None:
        self.record = record
        self.record_message = record_message
        self.clients: dict[str, ClientState] = {}
        self.latest: dict[str, Frame | Arrived] = {}
        self.subscribers: set[Subscription] = set()

    def client(self, client_id: str, kind: str) -> ClientState:
        state = self.clients.get(client_id)
        if state is None:
            state = self.clients[client_id] = ClientState(client_id, kind)
        return state

    def ingest(self, state: ClientState, frames: Iterable[Frame]) -> tuple[int, int]:
        """Accept `frames` of one client in sequence order; answers (accepted, duplicates)."""
        accepted = duplicates = 0
        for frame in frames:
            instance, seq = frame.get("instance", ""), int(frame.get("seq", 0))
            if instance != state.instance:
                state.instance, state.last_seq = instance, 0
            if seq <= state.last_seq:
                duplicates += 1
                continue
            state.last_seq = seq
            frame["node"] = state.client_id
            frame["sessions"] = self.record(frame)
            self.latest[state.client_id] = frame
            if self.subscribers:
                for subscriber in list(self.subscribers):
                    subscriber.offer(frame)
            accepted += 1
        if accepted:
            state.last_update = time.time()
        state.frames_received += accepted
        state.duplicates += duplicates
        return accepted, duplicates

    def ingest_message(self, state: ClientState, message: pb.Frame) -> bool:
        """Accept one gRPC frame of the client `state` (its node is the message's `node`):
        answers whether it was new (False: a duplicate, counted and dropped)."""
        instance, seq = message.instance, message.seq
        if instance != state.instance:
            state.instance, state.last_seq = instance, 0
        if seq <= state.last_seq:
            state.duplicates += 1
            return False
        state.last_seq = seq
        arrived = Arrived(message, self.record_message(message))
        if self.subscribers:
            frame = arrived.frame()
            self.latest[state.client_id] = frame
            for subscriber in list(self.subscribers):
                subscriber.offer(frame)
        else:
            self.latest[state.client_id] = arrived
        state.last_update = time.time()
        state.frames_received += 1
        return True

    def latest_frame(self, client_id: str) -> Frame | None:
        """The latest frame of `client_id` as a dict (made once, then kept)."""
        held = self.latest.get(client_id)
        if isinstance(held, Arrived):
            held = self.latest[client_id] = held.frame()
        return held

    def latest_time(self, client_id: str) -> float | None:
        """When the latest frame of `client_id` was taken (its `timestamp_unix_s`)."""
        held = self.latest.get(client_id)
        if held is None:
            return None
        return held.message.timestamp_unix_s if isinstance(held, Arrived) else held.get(
            "timestamp_unix_s")

    def subscribe(self, filter: FrameFilter) -> Subscription:
        subscription = Subscription(self, filter)
        self.subscribers.add(subscription)
        return subscription

    def close(self) -> None:
        for subscription in list(self.subscribers):
            subscription.close()
