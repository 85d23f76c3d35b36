"""Samplers: what one node measures at one moment. Host through psutil always; GPUs through NVML
where NVML answers. Rates are deltas of cumulative counters since the sampler's previous sample,
so each sampler keeps its own state and shares none with other psutil callers.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import psutil

from ..backends.nvml import NvmlProbe, reading
from ..core.clock import iso
from .frames import Frame

NVLINK_ALL_LINKS = 0xFFFFFFFF  # NVML scope id: the sum over every link


class HostSampler:
    """CPU ratio, memory bytes, disk and network bytes/s of the host."""

    def __init__(self) -> None:
        self._cpu = psutil.cpu_times()
        self._io = self._counters()
        self._at = time.monotonic()

    def sample(self) -> dict[str, float | int | None]:
        now = time.monotonic()
        cpu = psutil.cpu_times()
        io = self._counters()
        elapsed = now - self._at
        mem = psutil.virtual_memory()
        out: dict[str, float | int | None] = {
            "cpu_utilization_ratio": _cpu_ratio(self._cpu, cpu),
            "memory_used_bytes": int(mem.total - mem.available),
            "memory_total_bytes": int(mem.total),
        }
        for key in ("disk_read", "disk_write", "network_rx", "network_tx"):
            before, after = self._io.get(key), io.get(key)
            rate = None
            if before is not None and after is not None and elapsed > 0:
                rate = max(0, after - before) / elapsed
            out[f"{key}_bytes_per_s"] = rate
        self._cpu, self._io, self._at = cpu, io, now
        return out

    @staticmethod
    def _counters() -> dict[str, int | None]:
        disk = psutil.disk_io_counters()  # None where the kernel exposes no disk counters
        net = psutil.net_io_counters()
        return {
            "disk_read": None if disk is None else disk.read_bytes,
            "disk_write": None if disk is None else disk.write_bytes,
            "network_rx": None if net is None else net.bytes_recv,
            "network_tx": None if net is None else net.bytes_sent,
        }


def _cpu_ratio(before: Any, after: Any) -> float | None:
    total = sum(after) - sum(before)
    if total <= 0:
        return None
    idle = (after.idle - before.idle) + (getattr(after, "iowait", 0) - getattr(before, "iowait", 0))
    return min(1.0, max(0.0, 1.0 - idle / total))


class GpuSampler:
    """Per-GPU readings through the shared NVML probe. `nvml` is the `pynvml` module or, in tests,
    a fake of it.

    `available` is False where NVML cannot start (no driver): then `sample()` answers `[]`.
    A reading a GPU does not support is `None`.
    """

    def __init__(self, nvml: Any | None = None) -> None:
        self.probe = NvmlProbe(nvml)
        self.available = self.probe.available
        self.reason = self.probe.reason
        self._nvml = self.probe.nvml
        self._handles = self.probe.handles
        self._nvlink: dict[int, tuple[float, int | None, int | None]] = {}

    def info(self) -> list[dict[str, Any]]:
        """Identity of each GPU: device_id, name, memory_total, compute_capability."""
        return [self.probe.identity(index) for index in range(len(self._handles))]

    def sample(self) -> list[dict[str, Any]]:
        return [self._one(index, handle) for index, handle in enumerate(self._handles)]

    def _one(self, index: int, handle: Any) -> dict[str, Any]:
        nvml = self._nvml
        mem = self.probe.memory(index)
        power_mw = reading(lambda: nvml.nvmlDeviceGetPowerUsage(handle))
        # NVML's PCIe throughput is in KiB/s over its last 20 ms window.
        rx = reading(lambda: nvml.nvmlDeviceGetPcieThroughput(handle, nvml.NVML_PCIE_UTIL_RX_BYTES))
        tx = reading(lambda: nvml.nvmlDeviceGetPcieThroughput(handle, nvml.NVML_PCIE_UTIL_TX_BYTES))
        temperature = self.probe.temperature(index)
        nvlink_rx, nvlink_tx = self._nvlink_rates(index, handle)
        return {
            "device": f"gpu{index}",
            "utilization_ratio": self.probe.utilization(index),
            "memory_used_bytes": None if mem is None else int(mem.used),
            "memory_total_bytes": None if mem is None else int(mem.total),
            "temperature_celsius": None if temperature is None else float(temperature),
            "power_watts": None if power_mw is None else power_mw / 1000.0,
            "pcie_rx_bytes_per_s": None if rx is None else float(rx) * 1024,
            "pcie_tx_bytes_per_s": None if tx is None else float(tx) * 1024,
            "nvlink_rx_bytes_per_s": nvlink_rx,
            "nvlink_tx_bytes_per_s": nvlink_tx,
            "processes": self._processes(handle),
        }

    def _nvlink_rates(self, index: int, handle: Any) -> tuple[float | None, float | None]:
        """From NVML's cumulative NVLink data counters (KiB, summed over links), as deltas."""
        nvml = self._nvml
        now = time.monotonic()
        rx = tx = None
        try:
            values = nvml.nvmlDeviceGetFieldValues(
                handle,
                [
                    (nvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX, NVLINK_ALL_LINKS),
                    (nvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, NVLINK_ALL_LINKS),
                ],
            )
            rx, tx = (int(v.value.ullVal) if v.nvmlReturn == 0 else None for v in values)
        except Exception:  # no NVLink on this GPU, or an NVML without field values
            pass
        before = self._nvlink.get(index)
        self._nvlink[index] = (now, rx, tx)
        if before is None or now <= before[0]:
            return None, None
        elapsed = now - before[0]
        return _rate(before[1], rx, elapsed), _rate(before[2], tx, elapsed)

    def _processes(self, handle: Any) -> list[dict[str, Any]]:
        nvml = self._nvml
        seen: dict[int, dict[str, Any]] = {}
        for read in (
            "nvmlDeviceGetComputeRunningProcesses",
            "nvmlDeviceGetGraphicsRunningProcesses",
        ):
            for proc in reading(lambda r=read: getattr(nvml, r)(handle)) or ():
                used = getattr(proc, "usedGpuMemory", None)
                seen.setdefault(
                    int(proc.pid),
                    {
                        "pid": int(proc.pid),
                        "used_memory_bytes": None if used is None else int(used),
                    },
                )
        return list(seen.values())


def _rate(before: int | None, after: int | None, elapsed: float) -> float | None:
    if before is None or after is None:
        return None
    return max(0, after - before) * 1024 / elapsed


class NodeSampler:
    """One node's frames: host always, GPUs where NVML answers; each frame timestamped."""

    def __init__(self, node: str, nvml: Any | None = None) -> None:
        self.node = node
        self.hostname = socket.gethostname()
        self.host = HostSampler()
        self.gpu = GpuSampler(nvml)

    def info(self) -> dict[str, Any]:
        return {"hostname": self.hostname, "gpus": self.gpu.info()}

    def sample(self, sessions: list[str]) -> Frame:
        """One frame (no `seq`/`instance` yet: the buffer numbers it)."""
        now = time.time()
        return {
            "node": self.node,
            "timestamp": iso(now),
            "timestamp_unix_s": now,
            "sessions": sessions,
            "host": self.host.sample(),
            "gpus": self.gpu.sample() if self.gpu.available else [],
        }
