"""One NVML probe for the node agent and the profiler's sampler.

A probe starts NVML once; where it cannot start (no `pynvml`, no driver) it has no GPUs,
`available` False and a `reason`. A reading a GPU does not support is `None`, never zero.
`pynvml` is imported only when a probe starts, so importing this module stays light.
"""

from __future__ import annotations

from typing import Any, Callable


class NvmlProbe:
    """The GPUs NVML sees. `nvml` is the `pynvml` module, or a fake of it in tests."""

    def __init__(self, nvml: Any | None = None) -> None:
        self.nvml: Any = nvml
        self.handles: list[Any] = []
        self.available = False
        self.reason: str | None = None
        try:
            if self.nvml is None:
                import pynvml

                self.nvml = pynvml
            self.nvml.nvmlInit()
            count = self.nvml.nvmlDeviceGetCount()
            self.handles = [self.nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self.available = True
        except ImportError:
            self.reason = "nvidia-ml-py is not installed"
        except Exception as exc:  # NVMLError: no driver, so no NVIDIA GPU on this node
            self.reason = f"NVML unavailable: {exc}"

    def identity(self, index: int) -> dict[str, Any]:
        """GPU `index`'s device, device_id, name, memory_total and compute_capability."""
        nvml, handle = self.nvml, self.handles[index]
        name = reading(lambda: nvml.nvmlDeviceGetName(handle))
        cc = reading(lambda: nvml.nvmlDeviceGetCudaComputeCapability(handle))
        return {
            "device": f"gpu{index}",
            "device_id": index,
            "name": name.decode() if isinstance(name, bytes) else name,
            "memory_total": reading(lambda: int(nvml.nvmlDeviceGetMemoryInfo(handle).total)),
            "compute_capability": None if cc is None else f"{cc[0]}.{cc[1]}",
        }

    def memory(self, index: int) -> Any | None:
        """NVML's memory record (total, used, free bytes) of GPU `index`."""
        return reading(lambda: self.nvml.nvmlDeviceGetMemoryInfo(self.handles[index]))

    def utilization(self, index: int) -> float | None:
        """GPU `index`'s compute utilisation, 0..1."""
        util = reading(lambda: self.nvml.nvmlDeviceGetUtilizationRates(self.handles[index]).gpu)
        return None if util is None else util / 100.0

    def temperature(self, index: int) -> int | None:
        """GPU `index`'s core temperature in degrees Celsius, as NVML gives it."""
        sensor = 0  # NVML_TEMPERATURE_GPU
        return reading(lambda: self.nvml.nvmlDeviceGetTemperature(self.handles[index], sensor))


def reading(read: Callable[[], Any]) -> Any:
    """`read()`, or None where this GPU or NVML does not support the reading."""
    try:
        return read()
    except Exception:  # a reading this GPU does not support is unknown, not zero
        return None
