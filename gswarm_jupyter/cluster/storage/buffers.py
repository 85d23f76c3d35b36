"""Byte buffers on a node's devices: host memory (pinned where CUDA is usable) for `dram`, torch
tensors on `gpuN` / `vgpuN` (through `backends.devices.framework_device`, so `vgpuN` is
host-backed). Torch is imported only where a buffer needs it."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...backends.devices import framework_device
from ...core.errors import NotImplementedFeature


def allocate(size: int, device: str) -> Any:
    """An empty byte buffer on `device`: dram pinned host memory when CUDA exists."""
    if device == "dram":
        if cuda():
            import torch

            return torch.empty(size, dtype=torch.uint8).pin_memory().numpy()
        return np.empty(size, dtype=np.uint8)
    import torch

    return torch.empty(size, dtype=torch.uint8, device=framework_device(device))


def to_device(array: np.ndarray, device: str) -> Any:
    """`array` as a torch tensor on `device` (`NotImplementedFeature` without torch)."""
    try:
        import torch
    except ImportError:
        raise NotImplementedFeature(
            f"chunks on {device} need torch, which this node does not have", {"device": device}
        ) from None

    return torch.from_numpy(array).to(framework_device(device))


def host_view(buffer: Any) -> Any:
    """A memory copy's buffer as numpy where it is in host memory (else a placeholder)."""
    if isinstance(buffer, np.ndarray):
        return buffer
    return buffer.numpy() if buffer.device.type == "cpu" else np.empty(0, dtype=np.uint8)


def cuda() -> bool:
    """CUDA is usable here (torch imported only where a GPU device file exists)."""
    import glob

    if not glob.glob("/dev/nvidia[0-9]*"):
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
