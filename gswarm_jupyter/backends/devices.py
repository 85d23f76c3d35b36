"""Map the API's devices onto framework devices. Host-backed devices (`dram`, `vgpuN` here) run on
the CPU; `gpuN` is CUDA device N."""

from __future__ import annotations

import re

from ..core.errors import InvalidRequest

_GPU = re.compile(r"(?:gpu|cuda:)([0-9]+)")
_HOST = re.compile(r"cpu|dram|vgpu[0-9]+")


def framework_device(device: str) -> str:
    """`cpu` or `cuda:N` for an API device (`dram`, `gpuN`, `vgpuN`) or a framework one."""
    if device == "cuda":
        return "cuda:0"
    if _HOST.fullmatch(device):
        return "cpu"
    match = _GPU.fullmatch(device)
    if match:
        return f"cuda:{match.group(1)}"
    raise InvalidRequest(
        f"a model cannot run on device {device!r}: expected dram, gpuN, vgpuN, cpu or cuda:N",
        {"field": "device"},
    )
