"""Samplers: what one node measures at one moment. Host always (on Linux from /proc through
`procfs`, psutil's numbers at a fraction of its cost; elsewhere through psutil); GPUs through NVML
where NVML answers. Rates are deltas of cumulative counters since the sampler's previous sample,
so each sampler keeps its own state and shares none with other psutil callers.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from typing import Any

import psutil

from ..backends.nvml import NvmlProbe, reading
from ..core.clock import iso_many
from .frames import Frame
from .procfs import Cpu, open_counters

NVLINK_ALL_LINKS = 0xFFFFFFFF  # NVML scope id: the sum over every link

Counters = Mapping[Any, tuple[int, int]]  # per device: (bytes read or received, written or sent)


class HostSampler:
    """CPU ratio, memory bytes, disk and network bytes/s of the host.

    On Linux the counters come from `procfs.ProcCounters` (the numbers psutil gives, without
    reopening /proc each tick); elsewhere, or with `proc=False`, from psutil. Disk and network
    rates are summed over the devices present in both samples, each device's delta taken as
    psutil's `nowrap` takes it (a counter that went backwards restarted from zero); a device that
    appears is counted from its second sample on. No device at all: the rate is None.
    """

    def __init__(self, proc: bool = True) -> None:
        self._proc = open_counters() if proc else None
        self._cpu = self._cpu_now()
        self._disks, self._nets = self._io_now()
        self._at = time.monotonic()

    def sample(self) -> dict[str, float | int | None]:
        now = time.monotonic()
        cpu = self._cpu_now()
        disks, nets = self._io_now()
        total, available = self._memory()
        elapsed = now - self._at
        read, written = _rates(self._disks, disks, elapsed)
        received, sent = _rates(self._nets, nets, elapsed)
        ratio = _cpu_ratio(self._cpu, cpu)
        self._cpu, self._disks, self._nets, self._at = cpu, disks, nets, now
        return {
            "cpu_utilization_ratio": ratio,
            "memory_used_bytes": total - available,
            "memory_total_bytes": total,
            "disk_read_bytes_per_s": read,
            "disk_write_bytes_per_s": written,
            "network_rx_bytes_per_s": received,
            "network_tx_bytes_per_s": sent,
        }

    def _cpu_now(self) -> Cpu:
        if self._proc is not None:
            return self._proc.cpu()
        times = psutil.cpu_times()
        return Cpu(sum(times), times.idle + getattr(times, "iowait", 0))

    def _memory(self) -> tuple[int, int]:
        """psutil's `virtual_memory()` total and available, in bytes."""
        if self._proc is not None:
            total, available = self._proc.memory()
            if available is not None:
                return total, available
        mem = psutil.virtual_memory()  # no MemAvailable: psutil's own estimate
        return int(mem.total), int(mem.available)

    def _io_now(self) -> tuple[Counters, Counters]:
        if self._proc is not None:
            return self._proc.disks(), self._proc.networks()
        disks = psutil.disk_io_counters(perdisk=True) or {}
        nets = psutil.net_io_counters(pernic=True) or {}
        return (
            {name: (d.read_bytes, d.write_bytes) for name, d in disks.items()},
            {name: (n.bytes_recv, n.bytes_sent) for name, n in nets.items()},
        )


def _rates(before: Counters, after: Counters, elapsed: float) -> tuple[float | None, float | None]:
    """Both counters' bytes/s over the devices in both readings; None with no device or no time."""
    if not before or not after or elapsed <= 0:
        return None, None
    first = second = 0
    for name, (a0, b0) in before.items():
        now = after.get(name)
        if now is not None:
            a1, b1 = now
            first += a1 - a0 if a1 >= a0 else a1
            second += b1 - b0 if b1 >= b0 else b1
    return first / elapsed, second / elapsed


def _cpu_ratio(before: Cpu, after: Cpu) -> float | None:
    total = after.total - before.total
    if total <= 0:
        return None
    return min(1.0, max(0.0, 1.0 - (after.idle - before.idle) / total))


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
            "timestamp": iso_many(now),
            "timestamp_unix_s": now,
            "sessions": sessions,
            "host": self.host.sample(),
            "gpus": self.gpu.sample() if self.gpu.available else [],
        }
