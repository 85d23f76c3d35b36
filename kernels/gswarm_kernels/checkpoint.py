"""safetensors checkpoints of built-in models: tensors plus {"arch", "config", "format_version",
"precision"} in the header's metadata, as files or as bytes.

A file is read by mapping it copy-on-write: its tensors are views of the page cache until written,
and a write changes the reader's private copy of the page, never the file (`mapped` tells them)."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import safetensors
import safetensors.numpy

from .builtin import normalize_config
from .params import Params, check_params
from .quantization import SCALE_SUFFIX, bfloat16, dequantize, params_precision

FORMAT_VERSION = "1"

# safetensors.numpy.load does not know BF16 (safe_open(framework="numpy") does), so bytes are
# decoded here.
_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U64": np.uint64,
    "U32": np.uint32,
    "U16": np.uint16,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


class Checkpoint(NamedTuple):
    arch: str
    config: dict[str, Any]
    params: Params


def save_checkpoint(
    path: str | os.PathLike[str],
    arch: str,
    config: dict[str, Any],
    params: Mapping[str, np.ndarray],
) -> None:
    """Write a checkpoint atomically (a temporary file renamed into place)."""
    tensors, metadata = _prepare(arch, config, params)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        safetensors.numpy.save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_checkpoint(path: str | os.PathLike[str], *, as_float32: bool = True) -> Checkpoint:
    """Read a checkpoint; quantised tensors come back as float32 unless `as_float32` is False.

    The tensors as stored are copy-on-write views of the file's mapping (no bytes read or copied
    until used; `mapped(array)` is True for them)."""
    source = os.fspath(path)
    try:
        data = np.memmap(source, dtype=np.uint8, mode="c")
        (header_len,) = struct.unpack("<Q", data[:8].tobytes())
        header = json.loads(data[8 : 8 + header_len].tobytes())
    except (ValueError, struct.error) as exc:
        raise ValueError(f"{source}: not a safetensors file ({exc})") from None
    start = 8 + header_len
    params: Params = {}
    try:
        for name, info in header.items():
            if name == "__metadata__":
                continue
            begin, end = (start + int(o) for o in info["data_offsets"])
            if not start <= begin <= end <= len(data):
                raise ValueError(f"tensor {name!r} lies outside the file's data")
            params[name] = data[begin:end].view(_dtype(info["dtype"], name)).reshape(
                info["shape"]
            )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{source}: not a safetensors file ({exc})") from None
    return _finish(header.get("__metadata__") or {}, params, as_float32, source=source)


def mapped(array: np.ndarray) -> bool:
    """True for an array `read_checkpoint` mapped copy-on-write: the caller may keep and change it
    without a copy (no other reader, nor the file, sees the change)."""
    base: Any = array
    while isinstance(base, np.ndarray):  # a view (np.asarray of a mapped tensor is one) or the map
        if isinstance(base, np.memmap) and base.mode == "c":
            return True
        base = base.base
    return False


def read_checkpoint_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """{"arch", "config", "precision", "format_version"} without reading the tensors."""
    with safetensors.safe_open(os.fspath(path), framework="numpy") as f:
        return _parse_metadata(f.metadata() or {}, source=os.fspath(path))


def checkpoint_bytes(arch: str, config: dict[str, Any], params: Mapping[str, np.ndarray]) -> bytes:
    """The checkpoint as bytes, for in-memory transfer."""
    tensors, metadata = _prepare(arch, config, params)
    return safetensors.numpy.save(tensors, metadata=metadata)


def parse_checkpoint_bytes(data: bytes, *, as_float32: bool = True) -> Checkpoint:
    """Inverse of `checkpoint_bytes`."""
    try:
        (header_len,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + header_len])
        tensors = safetensors.deserialize(data)
    except Exception as exc:  # safetensors raises its own error type for corrupt input
        raise ValueError(f"checkpoint: not a safetensors payload ({exc})") from None
    params: Params = {}
    for name, info in tensors:
        params[name] = np.frombuffer(info["data"], dtype=_dtype(info["dtype"], name)).reshape(
            info["shape"]
        )
    return _finish(header.get("__metadata__") or {}, params, as_float32, source="checkpoint bytes")


def _dtype(name: str, tensor: str) -> np.dtype:
    if name == "BF16":
        return bfloat16()
    if name in _DTYPES:
        return np.dtype(_DTYPES[name])
    raise ValueError(f"checkpoint: tensor {tensor!r} has unsupported dtype {name}")


def _prepare(
    arch: str, config: dict[str, Any], params: Mapping[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    config = normalize_config(arch, config)
    _check_logical(arch, config, params)
    metadata = {
        "arch": arch,
        "config": json.dumps(config, sort_keys=True),
        "format_version": FORMAT_VERSION,
        "precision": params_precision(params),
    }
    return {name: np.ascontiguousarray(value) for name, value in params.items()}, metadata


def _finish(metadata: dict[str, str], params: Params, as_float32: bool, source: str) -> Checkpoint:
    meta = _parse_metadata(metadata, source)
    _check_logical(meta["arch"], meta["config"], params)
    if as_float32:
        params = dequantize(params)
    return Checkpoint(meta["arch"], meta["config"], params)


def _parse_metadata(metadata: dict[str, str], source: str) -> dict[str, Any]:
    if "arch" not in metadata:
        raise ValueError(
            f"{source}: no 'arch' in the safetensors metadata; not a built-in model checkpoint"
        )
    try:
        config = json.loads(metadata.get("config", "{}"))
    except json.JSONDecodeError:
        raise ValueError(f"{source}: metadata 'config' is not JSON") from None
    if not isinstance(config, dict):
        raise ValueError(f"{source}: metadata 'config' is not a JSON object")
    version = metadata.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{source}: format_version {version!r} is not supported (expected {FORMAT_VERSION})"
        )
    return {
        "arch": metadata["arch"],
        "config": normalize_config(metadata["arch"], config),
        "precision": metadata.get("precision", "fp32"),
        "format_version": version,
    }


def _check_logical(arch: str, config: dict[str, Any], params: Mapping[str, np.ndarray]) -> None:
    """Names and shapes as the architecture expects, int8 scales aside."""
    check_params(arch, config, {k: v for k, v in params.items() if not k.endswith(SCALE_SUFFIX)})
