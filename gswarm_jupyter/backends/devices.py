"""Map the API's devices onto framework devices. Host-backed devices (`dram`, `vgpuN` here) run on
the CPU; `gpuN` is CUDA device N. A virtual GPU carved from a physical GPU is bound to it in this
process (`bind_virtual`, sent by the server to the node's worker), so its copies, chunks and
services use that CUDA device; an unbound `vgpuN` is host-backed. Also what torch itself says of
a node's GPUs (for drivers without NVML) and the cap on one process's share of a GPU; torch is
imported only there."""

from __future__ import annotations

import glob
import os
import re
from typing import Any

from ..core.errors import InvalidRequest

_GPU = re.compile(r"(?:gpu|cuda:)([0-9]+)")
_HOST = re.compile(r"cpu|dram|vgpu[0-9]+")
_VGPU = re.compile(r"vgpu[0-9]+")
_bound: dict[str, str] = {}  # vgpuN -> the framework device it was carved from, in this process


def bind_virtual(device: str, target: str) -> None:
    """`device` (vgpuN) runs on `target` (`cpu`, `dram`, `gpuN` or `cuda:N`) in this process."""
    if not _VGPU.fullmatch(device):
        raise InvalidRequest(f"only a vgpuN is bound, not {device!r}", {"field": "device"})
    _bound[device] = framework_device(target)


def unbind_virtual(device: str) -> None:
    _bound.pop(device, None)


def framework_device(device: str) -> str:
    """`cpu` or `cuda:N` for an API device (`dram`, `gpuN`, `vgpuN`) or a framework one."""
    if device == "cuda":
        return "cuda:0"
    if device in _bound:
        return _bound[device]
    if _HOST.fullmatch(device):
        return "cpu"
    match = _GPU.fullmatch(device)
    if match:
        return f"cuda:{match.group(1)}"
    raise InvalidRequest(
        f"a model cannot run on device {device!r}: expected dram, gpuN, vgpuN, cpu or cuda:N",
        {"field": "device"},
    )


def torch_gpus() -> list[dict[str, Any]]:
    """GPUs through torch, for drivers without NVML (ROCm). Only asked when a GPU device file
    exists, so a CPU-only node never pays for importing torch."""
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


def cap_process_memory(gpu: int, size: int) -> float:
    """Cap this process's allocations on CUDA device `gpu` at `size` bytes (torch's caching
    allocator refuses past it); answers the fraction of the device that is."""
    import torch

    total = torch.cuda.get_device_properties(gpu).total_memory
    fraction = min(1.0, size / total)
    torch.cuda.set_per_process_memory_fraction(fraction, gpu)
    return fraction
