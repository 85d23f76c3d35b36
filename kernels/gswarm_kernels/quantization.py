"""Post-training quantisation of a parameter dict: fp16 and bf16 casts, int8 per-row symmetric.

A quantised dict is self-describing: int8 tensors keep their name and their float32 scales sit
beside them under `<name>.qscale`, one per row (1-D) or shaped to broadcast over the tensor.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16", "int8")
SCALE_SUFFIX = ".qscale"


def bfloat16() -> np.dtype:
    """numpy's bfloat16, from ml_dtypes (installed with JAX), imported only when needed."""
    try:
        import ml_dtypes
    except ImportError:
        raise ValueError("bf16 needs the ml_dtypes package (installed with jax)") from None
    return np.dtype(ml_dtypes.bfloat16)


def _cast_dtype(precision: str) -> np.dtype | None:
    if precision == "bf16":
        return bfloat16()
    return {"fp32": np.dtype(np.float32), "fp16": np.dtype(np.float16)}.get(precision)


def quantize(params: Mapping[str, np.ndarray], precision: str) -> dict[str, np.ndarray]:
    """A copy of `params` stored at `precision` (one of `PRECISIONS`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"target_precision: expected one of {list(PRECISIONS)}, got {precision!r}")
    params = dequantize(params)
    dtype = _cast_dtype(precision)
    if dtype is not None:
        return {name: value.astype(dtype) for name, value in params.items()}
    out: dict[str, np.ndarray] = {}
    for name, value in params.items():
        if value.ndim == 2:
            out[name], out[name + SCALE_SUFFIX] = int8_rows(value)
        else:
            out[name] = value.copy()
    return out


def int8_rows(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per output row: `weight ~= q * scale[:, None]`."""
    peak = np.abs(weight).max(axis=1)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(weight / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def dequantize(params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """float32 parameters from any precision (float32 arrays are passed through, not copied)."""
    out: dict[str, np.ndarray] = {}
    for name, value in params.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        if value.dtype == np.int8:
            scale = params.get(name + SCALE_SUFFIX)
            if scale is None:
                raise ValueError(f"params: int8 tensor {name!r} has no {name + SCALE_SUFFIX!r}")
            scale = np.asarray(scale, dtype=np.float32)
            # A 1-D scale is per row; a scale of the weight's rank broadcasts as it is shaped.
            scale = scale if scale.ndim == value.ndim else scale[:, None]
            out[name] = value.astype(np.float32) * scale
        else:
            out[name] = np.asarray(value, dtype=np.float32)
    return out


def params_precision(params: Mapping[str, np.ndarray]) -> str:
    """The precision a parameter dict is stored at (the narrowest kind present)."""
    names = {value.dtype.name for value in params.values()}
    for precision, dtype_name in (("int8", "int8"), ("bf16", "bfloat16"), ("fp16", "float16")):
        if dtype_name in names:
            return precision
    return "fp32"


def param_bytes(params: Mapping[str, np.ndarray]) -> int:
    """Bytes the tensors occupy (scales included)."""
    return int(sum(value.nbytes for value in params.values()))
