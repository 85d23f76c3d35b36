"""The three weight formats a model copy may hold, recognised from their bytes:

- `safetensors` with the architecture in its metadata (`arch`, `config`, as `gswarm_kernels`
  writes it). In memory a copy is the file's bytes; its tensors are numpy (or torch) views of
  them, so nothing is decoded or copied, and a copy is byte-identical wherever it goes.
- `torchscript`, a TorchScript archive (a zip). Read only with `torch.jit.load`, never unpickled
  as Python objects.
- `huggingface`, a Hugging Face model directory packed into one tar (`hfdir`): its tensors are
  views of the safetensors files inside, its text files (config, tokenizer) are read at load.
"""

from __future__ import annotations

import io
import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...backends import checkpoints
from ...backends.torch_buffers import torchscript_module
from . import hfdir

SAFETENSORS = "safetensors"
TORCHSCRIPT = "torchscript"
TORCHSCRIPT_ARCH = "torchscript"
HUGGINGFACE = hfdir.FORMAT
HF_ARCH = "hf"  # backends.registry.HF_ARCH
SUFFIX = {SAFETENSORS: ".safetensors", TORCHSCRIPT: ".pt", HUGGINGFACE: hfdir.SUFFIX}
HEAD = 512  # bytes that tell the formats apart

_ZIP_MAGIC = b"PK\x03\x04"
_MAX_HEADER = 100 * 1024 * 1024

_NUMPY_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "I64": "int64", "I32": "int32",
    "I16": "int16", "I8": "int8", "U64": "uint64", "U32": "uint32", "U16": "uint16",
    "U8": "uint8", "BOOL": "bool",
}


@dataclass(frozen=True, slots=True)
class TensorInfo:
    name: str
    dtype: str  # safetensors' name (F32, BF16, ...)
    shape: tuple[int, ...]
    start: int  # byte offsets in the whole file
    end: int


@dataclass(frozen=True, slots=True)
class Described:
    """What the bytes are: measured, never taken from a client."""

    format: str
    arch: str
    config: dict[str, Any]
    precision: str | None = None
    tensors: tuple[TensorInfo, ...] = field(default=())
    extra: dict[str, Any] = field(default_factory=dict)  # more to show (model_type, architecture)

    def metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {"arch": self.arch, "config": self.config, **self.extra}
        if self.precision is not None:
            out["precision"] = self.precision
        return out


def sniff(head: bytes) -> str:
    """The format of a file from its first bytes; ValueError for anything else."""
    if head.startswith(_ZIP_MAGIC):
        return TORCHSCRIPT
    if hfdir.is_packed(head):
        return HUGGINGFACE
    if len(head) >= 9:
        (n,) = struct.unpack("<Q", head[:8])
        if 2 <= n <= _MAX_HEADER and head[8:9] == b"{":
            return SAFETENSORS
    raise ValueError(
        "format: neither a safetensors file, a TorchScript archive nor a Hugging Face model "
        "directory"
    )


def header(
    buffer: np.ndarray | bytes, size: int | None = None
) -> tuple[dict[str, str], tuple[TensorInfo, ...]]:
    """A safetensors buffer's metadata and its tensors' places (offsets into the file).
    `buffer` may hold the header only when `size` gives the whole file's length."""
    data = memoryview(buffer).cast("B") if not isinstance(buffer, bytes) else memoryview(buffer)
    size = len(data) if size is None else size
    if len(data) < 8:
        raise ValueError("format: too short for safetensors")
    (n,) = struct.unpack("<Q", data[:8])
    if n > _MAX_HEADER or 8 + n > len(data):
        raise ValueError("format: safetensors header length is out of range")
    try:
        head = json.loads(bytes(data[8 : 8 + n]))
    except ValueError as exc:
        raise ValueError(f"format: safetensors header is not JSON ({exc})") from None
    base = 8 + n
    metadata = head.pop("__metadata__", None) or {}
    tensors = []
    for name, info in head.items():
        start, end = (base + int(x) for x in info["data_offsets"])
        if not base <= start <= end <= size:
            raise ValueError(f"format: tensor {name!r} lies outside the file")
        tensors.append(TensorInfo(name, info["dtype"], tuple(info["shape"]), start, end))
    tensors.sort(key=lambda t: t.start)
    return metadata, tuple(tensors)


def describe(buffer: np.ndarray | bytes) -> Described:
    """Recognise and check a whole file held in memory."""
    view = memoryview(buffer).cast("B") if not isinstance(buffer, bytes) else memoryview(buffer)
    fmt = sniff(bytes(view[:HEAD]))
    if fmt == TORCHSCRIPT:
        module = torchscript_module(buffer)
        return Described(TORCHSCRIPT, TORCHSCRIPT_ARCH, {"original_name": module.original_name})
    if fmt == HUGGINGFACE:
        return describe_packed(view)
    metadata, tensors = header(buffer)
    return _described(metadata, tensors)


def describe_file(path: str) -> Described:
    """Recognise and check a file, reading only its header (TorchScript: loading it)."""
    with open(path, "rb") as f:
        head = f.read(HEAD)
        fmt = sniff(head)
        if fmt in (TORCHSCRIPT, HUGGINGFACE):
            f.seek(0)
            return describe(f.read())
        (n,) = struct.unpack("<Q", head[:8])
        f.seek(0)
        start = f.read(8 + n)
        size = f.seek(0, io.SEEK_END)
    return _described(*header(start, size))


def _described(metadata: Mapping[str, str], tensors: tuple[TensorInfo, ...]) -> Described:
    if "arch" not in metadata:
        raise ValueError(
            "metadata: a safetensors checkpoint needs 'arch' and 'config' in its metadata "
            "(a built-in architecture)"
        )
    arch = metadata["arch"]
    try:
        config = json.loads(metadata.get("config", "{}"))
    except ValueError:
        raise ValueError("metadata: 'config' is not JSON") from None
    if not isinstance(config, dict):
        raise ValueError("metadata: 'config' is not a JSON object")
    suffix = checkpoints.scale_suffix()
    shapes = {t.name: _Shape(t.shape) for t in tensors if not t.name.endswith(suffix)}
    config = checkpoints.check_logical(arch, config, shapes)
    return Described(SAFETENSORS, arch, config, metadata.get("precision", "fp32"), tensors)


def describe_packed(view: memoryview) -> Described:
    """A packed Hugging Face model directory: what its config says, its tensors' places."""
    from ...backends.hf_model import describe_files

    index = hfdir.members(view)
    files = hfdir.texts(view, index)
    try:
        meta = json.loads(files.get(hfdir.META, "{}"))
        summary = describe_files(files, meta.get("model_type"), meta.get("num_labels"))
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"model directory: {exc}") from None
    tensors: list[TensorInfo] = []
    precisions = set()
    for name, (offset, size) in sorted(index.items()):
        if not name.endswith(hfdir.WEIGHTS):
            continue
        metadata, inner = header(view[offset : offset + size])
        precisions.add(metadata.get("precision") or _precision(inner))
        tensors += [TensorInfo(t.name, t.dtype, t.shape, t.start + offset, t.end + offset)
                    for t in inner]
    if not tensors:
        raise ValueError("weights: expected model.safetensors or shards, got none")
    suffix = checkpoints.scale_suffix()
    float_bytes = sum(4 * math.prod(t.shape) for t in tensors if not t.name.endswith(suffix))
    config = {"model_type": summary["model_type"], "param_bytes": float_bytes}
    if "num_labels" in meta:
        config["num_labels"] = meta["num_labels"]
    extra = {"model_type": summary["model_type"], "architecture": summary["architecture"],
             "family": summary["family"], "tokenizer": summary["tokenizer"]}
    if "labels" in summary:
        extra["labels"] = summary["labels"]
    precision = precisions.pop() if len(precisions) == 1 else "mixed"
    return Described(HUGGINGFACE, HF_ARCH, config, precision, tuple(tensors), extra)


def _precision(tensors: tuple[TensorInfo, ...]) -> str:
    dtypes = {t.dtype for t in tensors}
    if "I8" in dtypes:
        return "int8"
    for dtype, name in (("BF16", "bf16"), ("F16", "fp16")):
        if dtypes & {dtype} and not dtypes & {"F32"}:
            return name
    return "fp32"


def packed_files(buffer: np.ndarray) -> dict[str, str]:
    """The text files of a packed model held in `buffer`."""
    view = memoryview(buffer).cast("B")
    return hfdir.texts(view, hfdir.members(view))


@dataclass(frozen=True, slots=True)
class _Shape:
    shape: tuple[int, ...]


def numpy_views(buffer: np.ndarray, tensors: tuple[TensorInfo, ...]) -> dict[str, np.ndarray]:
    """The tensors of a safetensors buffer as numpy views of it (no copy)."""
    out = {}
    for t in tensors:
        out[t.name] = buffer[t.start : t.end].view(_numpy_dtype(t.dtype)).reshape(t.shape)
    return out


def _numpy_dtype(name: str) -> np.dtype:
    if name == "BF16":
        return checkpoints.bfloat16()
    try:
        return np.dtype(_NUMPY_DTYPES[name])
    except KeyError:
        raise ValueError(f"format: unsupported tensor dtype {name}") from None
