"""Small statistics over measured samples: percentiles, and a sliding record of requests."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


def percentile(samples: Iterable[float], q: float) -> float | None:
    """The `q`th percentile (nearest rank) of `samples`; None without samples."""
    ordered = sorted(samples)
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # epoch seconds when the request finished
    latency: float  # seconds
    ok: bool
    rows: int


class RequestLog:
    """Finished requests (bounded), for throughput and latency over a window or in buckets."""

    def __init__(self, maxlen: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        self.samples: deque[Sample] = deque(maxlen=maxlen)
        self.clock = clock
        self.total = 0
        self.successful = 0
        self.failed = 0

    def record(self, latency: float, ok: bool, rows: int = 0) -> None:
        self.samples.append(Sample(self.clock(), latency, ok, rows))
        self.total += 1
        if ok:
            self.successful += 1
        else:
            self.failed += 1

    def window(self, seconds: float) -> dict[str, Any]:
        """Throughput (requests/s, rows/s) and latency of the last `seconds`."""
        now = self.clock()
        return summarize([s for s in self.samples if s.at > now - seconds], seconds)

    def history(self, start: float, end: float, interval: float) -> list[dict[str, Any]]:
        """Buckets of `interval` seconds from `start` to `end`, each summarised."""
        buckets: list[list[Sample]] = [[] for _ in range(max(1, math.ceil((end - start) / interval)))]
        for s in self.samples:
            if start <= s.at < end:
                buckets[int((s.at - start) // interval)].append(s)
        out = []
        for i, bucket in enumerate(buckets):
            lo = start + i * interval
            out.append({"start": lo, "end": min(end, lo + interval), **summarize(bucket, interval)})
        return out


def summarize(samples: list[Sample], seconds: float) -> dict[str, Any]:
    latencies = [s.latency for s in samples if s.ok]
    return {
        "requests": len(samples),
        "successful": sum(1 for s in samples if s.ok),
        "failed": sum(1 for s in samples if not s.ok),
        "throughput": len(samples) / seconds if seconds > 0 else None,
        "rows_per_second": sum(s.rows for s in samples if s.ok) / seconds if seconds > 0 else None,
        "latency_mean": sum(latencies) / len(latencies) if latencies else None,
        "latency_p50": percentile(latencies, 50),
        "latency_p99": percentile(latencies, 99),
    }
