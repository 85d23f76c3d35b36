"""Training and quantisation as the cluster asks for them, dispatched to the framework's kernels
(`gswarm_kernels.train_torch` or `train_jax`, the quantisation kernels), imported where used."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .base import invalid_input
from .devices import framework_device


def losses_and_optimizers() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The loss functions and optimisers training knows."""
    from gswarm_kernels.training import LOSSES, OPTIMIZERS

    return tuple(LOSSES), tuple(OPTIMIZERS)


def check_rows(arch: str, config: dict[str, Any], inputs: Any, labels: Any, loss: str) -> None:
    """`ValueError` unless inline rows and labels make training data for the model."""
    from gswarm_kernels.training import training_data

    training_data(arch, config, inputs, labels, loss)


def train(framework: str, arch: str, config: dict[str, Any], params: dict[str, np.ndarray],
          inputs: Any, labels: Any, *, device: str, **options: Any) -> Any:
    """Train with `framework` (torch on `device`, JAX where it runs); answers the kernel's
    result (`params`, `loss_history`, `steps`)."""
    if framework == "jax":
        from gswarm_kernels import train_jax

        return train_jax.train(arch, config, params, inputs, labels, **options)
    from gswarm_kernels import train_torch

    return train_torch.train(arch, config, params, inputs, labels,
                             device=framework_device(device), **options)


def dequantize(params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """float32 params from stored ones (int8 with scales, fp16, bf16 or float32)."""
    from gswarm_kernels.quantization import dequantize as kernel

    return kernel(params)


def quantize(params: Mapping[str, np.ndarray], precision: str) -> dict[str, np.ndarray]:
    from gswarm_kernels.quantization import quantize as kernel

    return kernel(params, precision)


def stored_bytes(params: Mapping[str, np.ndarray]) -> int:
    """The bytes the params take as stored."""
    from gswarm_kernels.quantization import param_bytes

    return param_bytes(params)


def predict(arch: str, config: dict[str, Any], params: dict[str, np.ndarray],
            x: np.ndarray) -> np.ndarray:
    """The model's outputs on `x` (torch on the CPU), for comparing two sets of weights."""
    from gswarm_kernels import torch_infer, torch_models

    return torch_infer.predict(torch_models.build_module(arch, config, params), x)


def sample_inputs(arch: str, config: dict[str, Any], calibration: Any, seed: int,
                  samples: int) -> np.ndarray:
    """`calibration` rows as the model takes them, or a seeded random sample of `samples`."""
    from gswarm_kernels.inputs import as_token_matrix, as_vectors

    try:
        if calibration is not None:
            if arch == "mlp":
                return as_vectors(config, calibration, field="calibration_data")
            return as_token_matrix(config, calibration, field="calibration_data")
    except ValueError as exc:
        raise invalid_input(exc) from None
    rng = np.random.default_rng(seed)
    if arch == "mlp":
        return rng.standard_normal((samples, config["in"]), dtype=np.float32)
    return rng.integers(0, config["vocab"], (samples, min(config["context"], 16)))
