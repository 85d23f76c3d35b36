"""Measure a node's devices: its store's filesystem, the worker's memory, and the GPUs NVML sees.

Every number is measured; a number that cannot be measured is `None`.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
from typing import Any

import psutil

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


class GpuProbe:
    """GPUs through NVML. `nvml` is the `pynvml` module, or a fake of it in tests."""

    def __init__(self, nvml: Any | None = None) -> None:
        self._nvml = nvml
        self._handles: list[Any] = []
        self.available = False
        self.reason: str | None = None
        self._init()

    def _init(self) -> None:
        nvml = self._nvml
        if nvml is None:
            try:
                import pynvml as nvml
            except ImportError:
                self.reason = "nvidia-ml-py is not installed"
                return
            self._nvml = nvml
        try:
            nvml.nvmlInit()
            count = nvml.nvmlDeviceGetCount()
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self.available = True
        except nvml.NVMLError as exc:  # no driver here: the node has no NVIDIA GPU
            self.reason = f"NVML unavailable: {exc}"

    def gpus(self) -> list[dict[str, Any]]:
        """One record per GPU: identity, memory and the readings NVML gives (others None)."""
        nvml = self._nvml
        out = []
        for index, handle in enumerate(self._handles):
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            record: dict[str, Any] = {
                "device": f"gpu{index}",
                "device_id": index,
                "name": _text(nvml.nvmlDeviceGetName(handle)),
                "memory_total": int(mem.total),
                "memory_used": int(mem.used),
                "memory_available": int(mem.free),
                "usage": _try(lambda h=handle: nvml.nvmlDeviceGetUtilizationRates(h).gpu / 100.0),
                "temperature": _try(lambda h=handle: nvml.nvmlDeviceGetTemperature(h, 0)),
                "compute_capability": _try(
                    lambda h=handle: "{}.{}".format(*nvml.nvmlDeviceGetCudaComputeCapability(h))
                ),
            }
            out.append(record)
        return out


def torch_gpus() -> list[dict[str, Any]]:
    """GPUs through torch, for drivers without NVML (ROCm). Only asked when a GPU device file exists,
    so a CPU-only node never pays for importing torch."""
    if not (glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/dev/kfd")):
        return []
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    out = []
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        props = torch.cuda.get_device_properties(index)
        out.append(
            {
                "device": f"gpu{index}",
                "device_id": index,
                "name": props.name,
                "memory_total": int(total),
                "memory_used": int(total - free),
                "memory_available": int(free),
                "usage": None,
                "temperature": None,
                "compute_capability": f"{props.major}.{props.minor}",
            }
        )
    return out


def gpu_usage(gpu: dict[str, Any]) -> Usage:
    return {
        "total": gpu["memory_total"],
        "used": gpu["memory_used"],
        "available": gpu["memory_available"],
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _try(read: Any) -> Any:
    try:
        return read()
    except Exception:  # a reading this GPU does not support is unknown, not zero
        return None
