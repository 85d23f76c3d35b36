"""Post-training quantisation of a Hugging Face model's tensors: int8 for the linear layers
(per output channel, symmetric), fp16/bf16 casts of every float tensor.

An int8 weight keeps its name and layout; its float32 scale sits beside it under
`<name>.qscale`, shaped to broadcast over the weight (`(out, 1)` for `(out, in)` weights,
`(1, out)` for GPT-2's `(in, out)`), so `quantization.dequantize` restores either. Embeddings,
LayerNorms and biases stay float32 under int8: only linear layers are quantised.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..quantization import PRECISIONS, SCALE_SUFFIX, dequantize, int8_rows, quantize
from .layout import linear_layers
from .spec import HFSpec


def quantize_model(
    spec: HFSpec, params: Mapping[str, np.ndarray], precision: str
) -> dict[str, np.ndarray]:
    """A copy of `params` at `precision` (one of `PRECISIONS`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"target_precision: expected one of {list(PRECISIONS)}, got {precision!r}")
    if precision != "int8":
        return quantize(params, precision)
    out = dequantize(params)
    for name, in_out in linear_layers(spec).items():
        if name not in out:
            continue
        if in_out:  # quantise per output channel: the columns of an (in, out) weight
            q, scale = int8_rows(out[name].T)
            out[name], out[name + SCALE_SUFFIX] = np.ascontiguousarray(q.T), scale[None, :]
        else:
            q, scale = int8_rows(out[name])
            out[name], out[name + SCALE_SUFFIX] = q, scale[:, None]
    return out


def compute_params(params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What a model computes with: int8 linear weights and their scales as stored (they run as
    dynamic int8), every other tensor as float32 (fp16/bf16 widened)."""
    return {
        name: np.ascontiguousarray(value, dtype=np.int8 if value.dtype == np.int8 else np.float32)
        for name, value in params.items()
    }
