"""Per-identity rate limiting: a requests-per-minute window plus a requests-per-second burst window.

Fixed windows keep the headers exact and cheap: `X-RateLimit-Reset` is the end of the current minute
window, and a refused request learns in `retry_after` when the window that refused it rolls over.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset: int
    retry_after: int = 0

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


@dataclass(slots=True)
class _Windows:
    minute_start: float = 0.0
    minute_count: int = 0
    second_start: float = 0.0
    second_count: int = 0


class RateLimiter:
    """`per_minute` requests a minute, at most `burst` in any one second; 0 disables a limit."""

    def __init__(self, per_minute: int, burst: int, clock: Callable[[], float] = time.time) -> None:
        self.per_minute = per_minute
        self.burst = burst
        self._clock = clock
        self._windows: dict[str, _Windows] = {}

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0 or self.burst > 0

    def hit(self, identity: str, per_minute: int | None = None) -> Decision:
        """Count one request of `identity` and say whether it may proceed; `per_minute` replaces
        the limiter's own rate for this identity (an API key's quota)."""
        per_minute = self.per_minute if per_minute is None else per_minute
        now = self._clock()
        w = self._windows.get(identity)
        if w is None:
            if len(self._windows) > 10_000:
                self._forget_idle(now)
            w = self._windows[identity] = _Windows()
        minute = math.floor(now / 60) * 60
        if w.minute_start != minute:
            w.minute_start, w.minute_count = minute, 0
        second = math.floor(now)
        if w.second_start != second:
            w.second_start, w.second_count = second, 0

        limit = per_minute if per_minute > 0 else self.burst * 60
        reset = int(minute + 60)
        if per_minute > 0 and w.minute_count >= per_minute:
            return Decision(False, limit, 0, reset, max(1, math.ceil(minute + 60 - now)))
        if self.burst > 0 and w.second_count >= self.burst:
            return Decision(False, limit, max(0, limit - w.minute_count), reset, 1)
        w.minute_count += 1
        w.second_count += 1
        return Decision(True, limit, max(0, limit - w.minute_count), reset)

    def count(self, identity: str) -> int:
        """Requests of `identity` counted in the current minute window."""
        w = self._windows.get(identity)
        now = self._clock()
        return w.minute_count if w is not None and w.minute_start == math.floor(now / 60) * 60 else 0

    def _forget_idle(self, now: float) -> None:
        for identity in [k for k, w in self._windows.items() if now - w.minute_start > 120]:
            del self._windows[identity]
