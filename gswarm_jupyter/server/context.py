"""What every handler shares: the cluster runtime, the rate limiter, counters and config."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..cluster.runtime import ClusterRuntime
from ..core.db import Database
from ..core.ratelimit import RateLimiter


@dataclass
class GswarmContext:
    runtime: ClusterRuntime
    limiter: RateLimiter
    db: Database
    version: str = __version__
    started_at: float = field(default_factory=time.time)
    requests: Counter[int] = field(default_factory=Counter)  # by HTTP status
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def uptime(self) -> float:
        return round(time.time() - self.started_at, 3)

    async def start(self) -> None:
        """Start every component; each feature adds its own here, after the runtime."""
        self.db.migrate()
        await self.runtime.start()

    async def stop(self) -> None:
        """Stop in the reverse order of `start`."""
        await self.runtime.stop()
        self.db.close()
