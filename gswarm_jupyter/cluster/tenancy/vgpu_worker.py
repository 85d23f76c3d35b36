"""The worker side of a virtual GPU: what a service on one needs where its batches run.

`share` is the record the server books (`Vgpu.share()`): the physical device it was carved from,
its weight in that device's fair queue, its backing and memory size. A service on a vGPU runs its
model on the physical device (host-backed: the CPU), takes every forward pass in its turn of the
device's gate, and on CUDA bounds its process's memory to the vGPU's share of the device.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from ...backends.devices import cap_process_memory
from .wfq import gate_for


def runner_device(device: str, share: dict[str, Any] | None) -> str:
    """The device a service on `device` loads its model on: a CUDA-backed vGPU's physical GPU."""
    if share is not None and share.get("backing") == "cuda":
        return str(share["physical_device"])
    return device


def turn_of(share: dict[str, Any] | None) -> Callable[[], AbstractContextManager[Any]] | None:
    """The fair-queue turn around each batch of a service on the vGPU (None off vGPUs)."""
    if share is None:
        return None
    gate = gate_for(str(share["group"]))
    flow, weight = str(share["virtual_gpu_id"]), float(share["weight"])
    return lambda: gate.turn(flow, weight)


def bound_cuda_memory(share: dict[str, Any] | None) -> float | None:
    """On a CUDA-backed vGPU, cap this process's allocations on the physical GPU at the vGPU's
    share of it (torch's caching allocator refuses past it, so a model that outgrows its quota
    fails in its own service); answers the fraction set, None where nothing was set."""
    if share is None or share.get("backing") != "cuda":
        return None
    index = int(str(share["physical_device"]).removeprefix("gpu"))
    return cap_process_memory(index, int(share["memory_size"]))
