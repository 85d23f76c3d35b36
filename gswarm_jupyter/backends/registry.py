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
# The arch of a Hugging Face model directory, and its runners: framework -> (module, class).
HF_ARCH = "hf"
HF_RUNNERS: dict[str, tuple[str, str]] = {
    "torch": ("hf_torch_runner", "HFTorchRunner"),
    "jax": ("hf_jax_runner", "HFJaxRunner"),
}


def installed(framework: str) -> bool:
    """Whether the framework's package is importable here."""
    package = FRAMEWORKS[framework][0]
    return importlib.util.find_spec(package) is not None


def runner_class(framework: str, arch: str = "") -> type[Runner]:
    """The runner class of `framework` for `arch` (built-ins, or `HF_ARCH`); `NotImplementedFeature`
    when the framework is not installed."""
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
    module, cls = HF_RUNNERS[framework] if arch == HF_ARCH else FRAMEWORKS[framework][1:]
    return getattr(importlib.import_module(f".{module}", __package__), cls)  # type: ignore[no-any-return]


def load_runner(
    framework: str, arch: str, config: dict[str, Any], params: dict[str, Any], device: str
) -> Runner:
    """`framework`'s runner holding (arch, config, params) on `device` (an API or framework device).

    Quantised numpy weights (int8 with per-row scales, fp16, bf16) are dequantised to float32 on
    load: the stored copy stays small, the runner computes in float32.

    A Hugging Face model is `arch` `HF_ARCH` with `config` `{"model_dir", "model_type"?,
    "num_labels"?, "seed"?}`; non-empty `params` replace the directory's weights (a trained or
    quantised version, under the same names). A stored copy gives `config` `{"files": {name:
    text}, "model_type", "num_labels"?}` and all its tensors in `params` instead of a directory.
    Its int8 linear layers run as dynamic int8."""
    if arch == HF_ARCH:
        from .hf_model import read_model, read_model_files

        cls = runner_class(framework, HF_ARCH)  # a missing framework fails before any reading
        if "files" in config:
            return cls(  # type: ignore[call-arg]
                read_model_files(config["files"], params, config.get("model_type"),
                                 num_labels=config.get("num_labels"), seed=config.get("seed", 0)),
                device,
            )
        model = read_model(
            config["model_dir"],
            config.get("model_type"),
            num_labels=config.get("num_labels"),
            seed=config.get("seed", 0),
            params=params or None,
        )
        return cls(model, device)  # type: ignore[call-arg]
    if arch in ("mlp", "gpt") and params and all(isinstance(v, np.ndarray) for v in params.values()):
        from gswarm_kernels.quantization import dequantize, params_precision

        if params_precision(params) != "fp32":
            params = dequantize(params)
    return runner_class(framework)(arch, config, params, device)  # type: ignore[call-arg]


def load_hf_runner(framework: str, model: Any, device: str) -> Runner:
    """`framework`'s runner holding a read Hugging Face model (`hf_model.read_model`) on `device`."""
    return runner_class(framework, HF_ARCH)(model, device)  # type: ignore[call-arg]
