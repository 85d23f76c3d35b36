"""Checkpoints as the cluster handles them: built-in models made from their URL, safetensors bytes
written and read, and a model's expected size, over `gswarm_kernels` (imported where used, so a
server that never touches weights never imports the kernels)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import InvalidRequest
from .pagecache import prefetch

Weights = tuple[str, dict[str, Any], dict[str, np.ndarray]]  # (arch, config, params)


def builtin_spec(url: str, field: str = "source_url") -> Any:
    """The parsed `builtin://` URL (`InvalidRequest` naming `field` when it does not parse)."""
    from gswarm_kernels.builtin import parse_builtin_url

    try:
        return parse_builtin_url(url)
    except ValueError as exc:
        raise InvalidRequest(str(exc), {"field": field}) from None


def builtin_checkpoint(url: str) -> bytes:
    """The safetensors bytes of a built-in model, initialised from its URL's seed."""
    from gswarm_kernels.checkpoint import checkpoint_bytes
    from gswarm_kernels.params import init_params

    spec = builtin_spec(url)
    return checkpoint_bytes(spec.arch, spec.config, init_params(spec.arch, spec.config, spec.seed))


def builtin_expected(url: str) -> tuple[str, int]:
    """A built-in model's architecture and float32 byte size, before it is made."""
    from gswarm_kernels.params import param_shapes

    try:
        spec = builtin_spec(url)
    except InvalidRequest as exc:
        raise InvalidRequest(f"source_url: {exc.message}", {"field": "source_url"}) from None
    shapes = param_shapes(spec.arch, spec.config)
    return spec.arch, sum(4 * math.prod(s) for s in shapes.values())


def checkpoint(arch: str, config: dict[str, Any], params: Mapping[str, np.ndarray]) -> bytes:
    """Safetensors bytes of `params` with their architecture and config."""
    from gswarm_kernels.checkpoint import checkpoint_bytes

    return checkpoint_bytes(arch, config, params)


def read_file(path: Path) -> Weights:
    """(arch, config, params) of a checkpoint file, params as stored (zero-copy where possible).

    The params map the file; when it is not in the page cache, a thread faults their pages in
    (`pagecache.prefetch`) while the caller builds the model, so the file arrives at the disk's
    sequential speed rather than one fault's read-around window at a time."""
    from gswarm_kernels.checkpoint import read_checkpoint

    ckpt = read_checkpoint(path, as_float32=False)
    params = dict(ckpt.params)
    prefetch(path, params.values())
    return ckpt.arch, ckpt.config, params


def read_bytes(data: bytes) -> Weights:
    """(arch, config, params) of checkpoint bytes, params as stored (`ValueError` if malformed)."""
    from gswarm_kernels.checkpoint import parse_checkpoint_bytes

    ckpt = parse_checkpoint_bytes(data, as_float32=False)
    return ckpt.arch, ckpt.config, dict(ckpt.params)


def check_logical(arch: str, config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The normalised config, once the params fit the architecture (`ValueError` otherwise)."""
    from gswarm_kernels.builtin import normalize_config
    from gswarm_kernels.params import check_params

    config = normalize_config(arch, config)
    check_params(arch, config, params)
    return config


def scale_suffix() -> str:
    """The name suffix of an int8 tensor's per-row scales."""
    from gswarm_kernels.quantization import SCALE_SUFFIX

    return SCALE_SUFFIX


def bfloat16() -> np.dtype:
    from gswarm_kernels.quantization import bfloat16 as dtype

    return dtype()
