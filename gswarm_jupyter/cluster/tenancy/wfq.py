"""Weighted fair queueing of batches among the virtual GPUs of one physical device.

`FairQueue` is the pure policy (start-time fair queueing): a turn asked by flow `f` of weight `w`
gets the start tag `max(V, F_f)` and the finish tag `start + cost / w`, where `V` is the start tag
of the turn granted last and `F_f` the flow's previous finish tag; the waiting turn with the
smallest start tag goes next (ties in arrival order). Flows that stay backlogged therefore get
turns in proportion to their weights, and an idle flow banks no credit.

`DeviceGate` runs it across threads: one batch at a time on the device, each batch thread waits
for its turn (`turn(flow, weight)`, a context manager), so the batches of the services on vGPUs
of one device share it by compute units. A service has one batch in flight at a time and forms
its next only after the last one ran, so a gate that always served whoever waits would alternate
between two busy services whatever their weights. The gate therefore anticipates: when the flow
that just ran would come next by its tag (its next start tag is below every waiting one), the
device waits up to `grace` seconds for that flow's next batch before serving another.
`gate_for(group)` is the worker's one gate per device.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass(order=True)
class _Turn:
    start: float
    seq: int
    flow: str = field(compare=False)


class FairQueue:
    """The waiting turns of every flow on one device; not thread-safe (the gate locks it)."""

    def __init__(self) -> None:
        self.virtual_time = 0.0
        self._finish: dict[str, float] = {}
        self._waiting: list[_Turn] = []
        self._seq = itertools.count()

    def push(self, flow: str, weight: float, cost: float = 1.0) -> _Turn:
        if weight <= 0:
            raise ValueError(f"weight of {flow} must be > 0, got {weight}")
        start = max(self.virtual_time, self._finish.get(flow, 0.0))
        self._finish[flow] = start + cost / weight
        turn = _Turn(start, next(self._seq), flow)
        heapq.heappush(self._waiting, turn)
        return turn

    def peek(self) -> _Turn | None:
        return self._waiting[0] if self._waiting else None

    def next_start(self, flow: str) -> float:
        """The start tag a turn `flow` asked now would get."""
        return max(self.virtual_time, self._finish.get(flow, 0.0))

    def pop(self) -> _Turn:
        """The next turn to run; the virtual time moves to its start."""
        turn = heapq.heappop(self._waiting)
        self.virtual_time = max(self.virtual_time, turn.start)
        return turn

    def __len__(self) -> int:
        return len(self._waiting)


class DeviceGate:
    """One batch at a time on a device, in `FairQueue` order among the threads that wait."""

    def __init__(self, grace: float = 0.05, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace = grace
        self.clock = clock
        self._cond = threading.Condition()
        self._queue = FairQueue()
        self._busy = False
        self._expected: tuple[str, float] | None = None  # (flow, until): the device waits for it
        self.granted: dict[str, int] = {}  # turns granted per flow, for stats

    @contextmanager
    def turn(self, flow: str, weight: float) -> Iterator[None]:
        with self._cond:
            mine = self._queue.push(flow, weight)
            while not self._mine(mine):
                self._cond.wait(self._patience())
            self._queue.pop()
            self._busy, self._expected = True, None
            self.granted[flow] = self.granted.get(flow, 0) + 1
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                best = self._queue.peek()
                if best is None or self._queue.next_start(flow) < best.start:
                    self._expected = (flow, self.clock() + self.grace)
                self._cond.notify_all()

    def _mine(self, turn: _Turn) -> bool:
        """Whether `turn` may run now: the device is free, it is the best waiting, and the device
        is not waiting for another flow's next batch."""
        if self._busy or self._queue.peek() is not turn:
            return False
        if self._expected is None or self._expected[0] == turn.flow:
            return True
        if self.clock() >= self._expected[1]:
            self._expected = None  # that flow did not come back in time
            return True
        return False

    def _patience(self) -> float | None:
        """How long a waiter sleeps before it looks again (None: until notified)."""
        if self._expected is None:
            return None
        return max(0.0, self._expected[1] - self.clock())


_gates: dict[str, DeviceGate] = {}
_gates_lock = threading.Lock()


def gate_for(group: str) -> DeviceGate:
    """This process's gate of the physical device `group` (e.g. `node1:dram`, `node1:gpu0`)."""
    with _gates_lock:
        gate = _gates.get(group)
        if gate is None:
            gate = _gates[group] = DeviceGate()
        return gate
