"""What every handler shares: the cluster runtime, the rate limiter, counters and config."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..cluster.runtime import ClusterRuntime
from ..core.ratelimit import RateLimiter


@dataclass
class GswarmContext:
    runtime: ClusterRuntime
    limiter: RateLimiter
    version: str = __version__
    started_at: float = field(default_factory=time.time)
    requests: Counter[int] = field(default_factory=Counter)  # by HTTP status
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def uptime(self) -> float:
        return round(time.time() - self.started_at, 3)

    async def start(self) -> None:
        await self.runtime.start()

    async def stop(self) -> None:
        await self.runtime.stop()
