"""The sampling loop a node runs (inside a Dask worker, or in an external agent): a schedule of
the sessions' periods, a thread that samples when a period is due, and a numbered buffer that keeps
every frame until the server acknowledges it.

Why a buffer with acknowledgements rather than a push: the server pulls (Dask nodes) or receives
(agents) frames in batches and answers the highest sequence number it holds; the node drops only
what is acknowledged, so a lost batch or a reconnect resends, and the server drops repeats by
sequence number. Nothing is overwritten between node and server.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from typing import Any

from .frames import Frame
from .samplers import NodeSampler

log = logging.getLogger(__name__)

IDLE_INTERVAL_MS = 1000
DEFAULT_CAPACITY = 200_000  # about 33 minutes at 10 ms: a node's outage before it drops its oldest


class FrameBuffer:
    """Frames numbered 1, 2, ... within one `instance`, held until acknowledged. Thread-safe."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, instance: str | None = None) -> None:
        self.instance = instance or uuid.uuid4().hex
        self.capacity = capacity
        self.seq = 0
        self.dropped = 0
        self._frames: deque[Frame] = deque()
        self._lock = threading.Lock()

    def push(self, frame: Frame) -> Frame:
        with self._lock:
            self.seq += 1
            frame["seq"] = self.seq
            frame["instance"] = self.instance
            self._frames.append(frame)
            if len(self._frames) > self.capacity:
                self._frames.popleft()
                self.dropped += 1
        return frame

    def ack(self, seq: int) -> None:
        """Forget every frame numbered `seq` or below."""
        with self._lock:
            while self._frames and self._frames[0]["seq"] <= seq:
                self._frames.popleft()

    def pending(self, after: int = 0, limit: int | None = None) -> list[Frame]:
        """Unacknowledged frames numbered above `after`, oldest first."""
        with self._lock:
            out = [f for f in self._frames if f["seq"] > after]
        return out if limit is None else out[:limit]

    def __len__(self) -> int:
        return len(self._frames)


class Schedule:
    """When each session wants its next sample. With no session, an idle tick keeps the node's
    latest reading fresh. Ticks missed (an overloaded node) are skipped, not bunched."""

    IDLE = ""

    def __init__(self, idle_interval_ms: int = IDLE_INTERVAL_MS) -> None:
        self.idle_s = idle_interval_ms / 1000.0
        self.periods: dict[str, float] = {}
        self.due: dict[str, float] = {self.IDLE: time.monotonic()}

    def set_plan(self, plan: dict[str, int], now: float | None = None) -> bool:
        """Sessions and their periods in ms; answers whether anything changed."""
        now = time.monotonic() if now is None else now
        periods = {self.IDLE: self.idle_s} if not plan else {}
        periods.update({name: ms / 1000.0 for name, ms in plan.items()})
        if periods == self.periods:
            return False
        for name, period in periods.items():
            if self.periods.get(name) != period:
                self.due[name] = now  # a new session starts with a sample now
        self.due = {name: self.due[name] for name in periods}
        self.periods = periods
        return True

    def next_due(self) -> float:
        return min(self.due.values())

    def take_due(self, now: float) -> list[str] | None:
        """The sessions due at `now` (`[]` for an idle tick), or None when nothing is due."""
        due = [name for name, at in self.due.items() if at <= now + 1e-6]
        if not due:
            return None
        for name in due:
            period = self.periods[name]
            at = self.due[name] + period
            self.due[name] = at if at > now else now + period
        return sorted(name for name in due if name != self.IDLE)


class SamplingLoop:
    """A daemon thread that samples `sampler` on `schedule` into `buffer`."""

    def __init__(
        self,
        sampler: NodeSampler,
        buffer: FrameBuffer | None = None,
        idle_interval_ms: int = IDLE_INTERVAL_MS,
    ) -> None:
        self.sampler = sampler
        self.buffer = buffer or FrameBuffer()
        self.schedule = Schedule(idle_interval_ms)
        self.schedule.set_plan({})
        self._lock = threading.Lock()  # a sample and a plan change never interleave
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"gswarm-sampler-{self.sampler.node}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def set_plan(self, plan: dict[str, int]) -> None:
        with self._lock:
            changed = self.schedule.set_plan(plan)
        if changed:
            self._wake.set()

    def sync(self, acked: int, plan: dict[str, int], limit: int | None = None) -> list[Frame]:
        """Drop what the server holds, take the new plan, answer what it does not hold yet.

        Under the sampling lock: every frame tagged with a session the new plan drops is in the
        answer, so a stop that syncs last misses none of its frames.
        """
        with self._lock:
            self.buffer.ack(acked)
            changed = self.schedule.set_plan(plan)
            frames = self.buffer.pending(acked, limit)
        if changed:
            self._wake.set()
        return frames

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.clear()
            with self._lock:
                due = self.schedule.take_due(time.monotonic())
                if due is not None:
                    try:
                        self.buffer.push(self.sampler.sample(due))
                    except Exception:  # one failed reading must not end the node's sampling
                        log.exception("gswarm: sampling %s failed", self.sampler.node)
                wait = self.schedule.next_due() - time.monotonic()
            if wait > 0:
                self._wake.wait(wait)

    def info(self) -> dict[str, Any]:
        return {
            **self.sampler.info(),
            "instance": self.buffer.instance,
            "dropped": self.buffer.dropped,
        }
