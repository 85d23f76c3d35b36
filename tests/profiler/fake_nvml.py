"""`FakeNvml`: a stand-in for the `pynvml` module, for the GPU code path on machines without an
NVIDIA driver. It answers like NVML for the calls the samplers make; readings are settable."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any


class FakeNVMLError(Exception):
    pass


@dataclass
class FakeGpu:
    name: str = "Fake A100"
    total: int = 40 * 2**30
    used: int = 10 * 2**30
    util_percent: int = 75
    temperature: int = 61
    power_mw: int = 250_000
    pcie_rx_kib: int = 1000
    pcie_tx_kib: int = 500
    nvlink: bool = True
    nvlink_rx_kib: int = 0  # cumulative counters
    nvlink_tx_kib: int = 0
    power_supported: bool = True
    processes: list[tuple[int, int]] = field(default_factory=lambda: [(4242, 2**30)])


class FakeNvml:
    """The pynvml module's surface the samplers use."""

    NVMLError = FakeNVMLError
    NVML_TEMPERATURE_GPU = 0
    NVML_PCIE_UTIL_TX_BYTES = 0
    NVML_PCIE_UTIL_RX_BYTES = 1
    NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX = 138
    NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX = 139

    def __init__(self, gpus: list[FakeGpu] | None = None, driver: bool = True) -> None:
        self.gpus = gpus if gpus is not None else [FakeGpu()]
        self.driver = driver

    def nvmlInit(self) -> None:
        if not self.driver:
            raise FakeNVMLError("Driver Not Loaded")

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        return self.gpus[index]

    def nvmlDeviceGetName(self, gpu: FakeGpu) -> bytes:
        return gpu.name.encode()

    def nvmlDeviceGetCudaComputeCapability(self, gpu: FakeGpu) -> tuple[int, int]:
        return (8, 0)

    def nvmlDeviceGetMemoryInfo(self, gpu: FakeGpu) -> Any:
        return SimpleNamespace(total=gpu.total, used=gpu.used, free=gpu.total - gpu.used)

    def nvmlDeviceGetUtilizationRates(self, gpu: FakeGpu) -> Any:
        return SimpleNamespace(gpu=gpu.util_percent, memory=10)

    def nvmlDeviceGetTemperature(self, gpu: FakeGpu, sensor: int) -> int:
        return gpu.temperature

    def nvmlDeviceGetPowerUsage(self, gpu: FakeGpu) -> int:
        if not gpu.power_supported:
            raise FakeNVMLError("Not Supported")
        return gpu.power_mw

    def nvmlDeviceGetPcieThroughput(self, gpu: FakeGpu, counter: int) -> int:
        return gpu.pcie_rx_kib if counter == self.NVML_PCIE_UTIL_RX_BYTES else gpu.pcie_tx_kib

    def nvmlDeviceGetFieldValues(self, gpu: FakeGpu, fields: list[tuple[int, int]]) -> list[Any]:
        out = []
        for field_id, _scope in fields:
            value = (
                gpu.nvlink_rx_kib
                if field_id == self.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX
                else gpu.nvlink_tx_kib
            )
            out.append(
                SimpleNamespace(
                    fieldId=field_id,
                    nvmlReturn=0 if gpu.nvlink else 3,  # NVML_ERROR_NOT_SUPPORTED
                    value=SimpleNamespace(ullVal=value),
                )
            )
        return out

    def nvmlDeviceGetComputeRunningProcesses(self, gpu: FakeGpu) -> list[Any]:
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in gpu.processes]

    def nvmlDeviceGetGraphicsRunningProcesses(self, gpu: FakeGpu) -> list[Any]:
        return []
