"""The frameworks a node can serve with, and loading a runner by name."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import numpy as np

from ..core.errors import InvalidRequest, NotImplementedFeature
from .base import Runner

# framework -> (package it needs, runner module, runner class)
FRAMEWORKS: dict[str, tuple[str, str, str]] = {
    "torch": ("torch", "torch_runner", "TorchRunner"),
    "jax": ("jax", "jax_runner", "JaxRunner"),
}


def installed(framework: str) -> bool:
    """Whether the framework's package is importable here."""
    package = FRAMEWORKS[framework][0]
    return importlib.util.find_spec(package) is not None


def runner_class(framework: str) -> type[Runner]:
    """The runner class of `framework`; `NotImplementedFeature` when it is not installed."""
    if framework not in FRAMEWORKS:
        raise InvalidRequest(
            f"unknown framework {framework!r}: expected one of {', '.join(FRAMEWORKS)}",
            {"field": "framework", "allowed": list(FRAMEWORKS)},
        )
    if not installed(framework):
        raise NotImplementedFeature(
            f"framework {framework!r} is not installed on this node",
            {"framework": framework, "package": FRAMEWORKS[framework][0]},
        )
    _, module, cls = FRAMEWORKS[framework]
    return getattr(importlib.import_module(f".{module}", __package__), cls)  # type: ignore[no-any-return]


def load_runner(
    framework: str, arch: str, config: dict[str, Any], params: dict[str, Any], device: str
) -> Runner:
    """`framework`'s runner holding (arch, config, params) on `device` (an API or framework device).

    Quantised numpy weights (int8 with per-row scales, fp16, bf16) are dequantised to float32 on
    load: the stored copy stays small, the runner computes in float32."""
    if arch in ("mlp", "gpt") and params and all(isinstance(v, np.ndarray) for v in params.values()):
        from gswarm_kernels.quantization import dequantize, params_precision

        if params_precision(params) != "fp32":
            params = dequantize(params)
    return runner_class(framework)(arch, config, params, device)  # type: ignore[call-arg]
