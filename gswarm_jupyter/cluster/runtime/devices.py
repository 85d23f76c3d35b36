"""Measure a node's devices: its store's filesystem, the worker's memory, and the GPUs NVML sees.

Every number is measured; a number that cannot be measured is `None`.
"""

from __future__ import annotations

import logging
import shutil
from typing import Any

import psutil

from ...backends.nvml import NvmlProbe

log = logging.getLogger(__name__)

Usage = dict[str, int | None]


def disk_usage(path: str) -> Usage:
    """The filesystem that holds `path`."""
    du = shutil.disk_usage(path)
    return {"total": du.total, "used": du.total - du.free, "available": du.free}


def dram_usage(memory_limit: int | None, used: int | None) -> Usage:
    """The worker's memory: its limit (or the host's memory) and what the worker process holds."""
    total = memory_limit or psutil.virtual_memory().total
    return {
        "total": total,
        "used": used,
        "available": None if used is None else max(0, total - used),
    }


def process_rss() -> int:
    return int(psutil.Process().memory_info().rss)


def host_cpu() -> dict[str, Any]:
    """Host CPU cores and utilisation (0..1) since the previous call."""
    return {"cores": psutil.cpu_count(), "usage": psutil.cpu_percent(interval=None) / 100.0}


def nvml_gpus(probe: NvmlProbe) -> list[dict[str, Any]]:
    """One record per GPU the probe sees: identity, memory and the readings NVML gives (others None)."""
    out = []
    for index in range(len(probe.handles)):
        record = probe.identity(index)
        mem = probe.memory(index)
        record.update(
            memory_total=None if mem is None else int(mem.total),
            memory_used=None if mem is None else int(mem.used),
            memory_available=None if mem is None else int(mem.free),
            usage=probe.utilization(index),
            temperature=probe.temperature(index),
        )
        out.append(record)
    return out


def gpu_usage(gpu: dict[str, Any]) -> Usage:
    return {
        "total": gpu["memory_total"],
        "used": gpu["memory_used"],
        "available": gpu["memory_available"],
    }
