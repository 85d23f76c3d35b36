"""Bytes on a node's devices as torch sees them: the byte buffers a worker store keeps (host
memory, pinned where CUDA is usable, for `dram`; torch tensors on `gpuN` / `vgpuN`, mapped by
`devices.framework_device`), tensors viewed in a safetensors buffer, and TorchScript archives.

The storage wing (`cluster/storage`) reaches torch only through here. torch is imported where a
function needs it, so a CPU-only node that keeps everything in numpy never imports it.
"""

from __future__ import annotations

import glob
import io
from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np

from ..core.errors import NotImplementedFeature
from .devices import framework_device


class TensorSlice(Protocol):
    """Where one tensor lies in a safetensors buffer (`cluster.storage.weightfile.TensorInfo`)."""

    name: str
    dtype: str  # safetensors' name (F32, BF16, ...)
    shape: tuple[int, ...]
    start: int
    end: int


# -- byte buffers -------------------------------------------------------------------------------


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


def copy_block(dest: Any, offset: int, block: np.ndarray) -> None:
    """Write `block` (host bytes) into the torch byte buffer `dest` at `offset`."""
    import torch

    dest[offset : offset + len(block)].copy_(torch.from_numpy(block.copy()))


def host_view(buffer: Any) -> Any:
    """A memory copy's buffer as numpy where it is in host memory (else a placeholder)."""
    if isinstance(buffer, np.ndarray):
        return buffer
    return buffer.numpy() if buffer.device.type == "cpu" else np.empty(0, dtype=np.uint8)


def cuda() -> bool:
    """CUDA is usable here (torch imported only where a GPU device file exists)."""
    if not glob.glob("/dev/nvidia[0-9]*"):
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


# -- tensors ------------------------------------------------------------------------------------


def as_tensor(buffer: Any) -> Any:
    """A byte buffer (numpy, or already torch) as a torch tensor, sharing its memory."""
    import torch

    return torch.from_numpy(buffer) if isinstance(buffer, np.ndarray) else buffer


def tensors_of(params: dict[str, Any]) -> dict[str, Any]:
    """Arrays as torch tensors (copies: the arrays may be read-only views)."""
    import torch

    return {k: torch.from_numpy(np.array(v)) for k, v in params.items()}


def torch_views(buffer: Any, tensors: Iterable[TensorSlice]) -> dict[str, Any]:
    """The tensors of a safetensors buffer held as a torch uint8 tensor (on any device), as views
    where the offsets allow, copies where they do not."""
    import torch

    out = {}
    for t in tensors:
        dtype = _torch_dtype(t.dtype)
        raw = buffer[t.start : t.end]
        size = torch.empty((), dtype=dtype).element_size()
        if t.start % size == 0:
            out[t.name] = raw.view(dtype).reshape(t.shape)
        else:  # unaligned: a copy of the bytes, aligned
            out[t.name] = raw.clone().view(dtype).reshape(t.shape)
    return out


def device_of(tensor: Any) -> str:
    """The framework device a torch tensor is on (`cpu`, `cuda:0`)."""
    return str(tensor.device)


# -- TorchScript --------------------------------------------------------------------------------


def torchscript_module(buffer: np.ndarray | bytes, device: str = "cpu") -> Any:
    """Load a TorchScript archive (TorchScript code and tensors only; no Python pickle)."""
    import torch

    data = bytes(buffer) if not isinstance(buffer, bytes) else buffer
    try:
        return torch.jit.load(io.BytesIO(data), map_location=device)
    except Exception as exc:  # torch raises RuntimeError subclasses of its own
        raise ValueError(f"format: not a loadable TorchScript archive ({exc})") from None


def torchscript_params(module: Any) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def _torch_dtype(name: str) -> Any:
    import torch

    table = {
        "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
        "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
        "U8": torch.uint8, "BOOL": torch.bool,
    }
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"format: unsupported tensor dtype {name} for torch") from None
