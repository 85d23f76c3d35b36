"""A session's summary: per node, per device, per metric: mean, max, p95 and the sample count."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from .frames import Frame, readings

Summary = dict[str, dict[str, dict[str, dict[str, float | int]]]]


def summarize(frames: Iterable[Frame]) -> Summary:
    """`{node: {device: {metric: {"mean", "max", "p95", "count"}}}}` over every reading."""
    values: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for frame in frames:
        for device, metric, value in readings(frame):
            values[frame["node"]][device][metric].append(value)
    return {
        node: {
            device: {metric: stats(series) for metric, series in sorted(metrics.items())}
            for device, metrics in sorted(devices.items())
        }
        for node, devices in sorted(values.items())
    }


def stats(series: list[float]) -> dict[str, Any]:
    return {
        "mean": sum(series) / len(series),
        "max": max(series),
        "p95": percentile(series, 0.95),
        "count": len(series),
    }


def percentile(series: list[float], q: float) -> float:
    """The `q` quantile with linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(series)
    rank = q * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
