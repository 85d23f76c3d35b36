"""Hugging Face models for the cluster: train a read model, quantise it and measure what
quantisation costs, save it back (reading is `hf_model`); kernel ValueErrors leave as API errors.

A field of the request (`optimizer`, `target_precision`, `model_type`, ...) wrong is
`InvalidRequest`; data that does not fit the model is `InvalidInputData`; a model directory that
cannot be read is `InvalidRequest` naming it. A training loss that stops being finite stays a
`FloatingPointError` for the caller to report.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from gswarm_kernels.hf.model_dir import HFModel, save_model_dir
from gswarm_kernels.hf.tokenizer import tokenizer_for
from gswarm_kernels.training import TrainResult

from ..core.errors import InvalidRequest
from .base import invalid_input
from .devices import framework_device
from .hf_model import kernel_error, read_model
from .registry import load_hf_runner

__all__ = ["read_model", "save_model", "train_model", "quantize_and_measure"]
CALIBRATION_SAMPLES = 8
CALIBRATION_TOKENS = 16


def save_model(model: HFModel, path: str | os.PathLike[str]) -> None:
    """Write `model` as a Hugging Face directory at `path`."""
    save_model_dir(model, path)


def train_model(
    framework: str,
    model: HFModel,
    inputs: Any,
    labels: Any,
    *,
    device: str = "cpu",
    **hyperparameters: Any,
) -> TrainResult:
    """Train a classifier (class labels) or a causal model (next-token loss, `labels` None) with
    `framework`; the result's tensors have the model's names. `hyperparameters` are those of
    `gswarm_kernels.hf.train_torch.train` (epochs, learning_rate, optimizer, loss, ...)."""
    tokenizer = tokenizer_for(model.spec, model.tokenizer_json)
    try:
        if framework == "jax":
            from gswarm_kernels.hf import train_jax

            return train_jax.train(
                model.spec, model.params, inputs, labels, tokenizer=tokenizer, **hyperparameters
            )
        from gswarm_kernels.hf import train_torch

        return train_torch.train(
            model.spec,
            model.params,
            inputs,
            labels,
            tokenizer=tokenizer,
            device=framework_device(device),
            **hyperparameters,
        )
    except ValueError as exc:
        raise kernel_error(exc) from None


@dataclass(frozen=True)
class QuantizeReport:
    """A quantised copy's tensors and what was measured against the original."""

    params: dict[str, np.ndarray]
    accuracy_loss: float  # ||quantised - original|| / ||original|| of the outputs
    original_bytes: int
    optimized_bytes: int
    samples: int


def quantize_and_measure(
    model: HFModel,
    precision: str,
    calibration: Any = None,
    *,
    framework: str = "torch",
    device: str = "cpu",
    seed: int = 0,
) -> QuantizeReport:
    """`model` at `precision` (int8 linear layers, or fp16/bf16), with the relative error of its
    outputs against the original's on `calibration` rows (strings or token ids), or on seeded
    random token rows when there are none."""
    from gswarm_kernels.hf.inputs import model_rows
    from gswarm_kernels.hf.quantize import quantize_model
    from gswarm_kernels.quantization import param_bytes

    try:
        quantized = quantize_model(model.spec, model.params, precision)
    except ValueError as exc:
        raise InvalidRequest(str(exc), {"field": "target_precision"}) from None
    if calibration is None:
        rows = _random_rows(model, seed)
    else:
        tokenizer = tokenizer_for(model.spec, model.tokenizer_json)
        try:
            rows = model_rows(model.spec, tokenizer, calibration, field="calibration_data")
        except ValueError as exc:
            raise invalid_input(exc) from None
    original = load_hf_runner(framework, model, device)
    served = load_hf_runner(framework, model._replace(params=quantized), device)
    try:
        reference, output = original.outputs(rows), served.outputs(rows)
    finally:
        original.close()
        served.close()
    return QuantizeReport(
        params=quantized,
        accuracy_loss=_relative_error(reference, output),
        original_bytes=param_bytes(model.params),
        optimized_bytes=param_bytes(quantized),
        samples=len(rows),
    )


def _random_rows(model: HFModel, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    width = min(CALIBRATION_TOKENS, model.spec.max_length)
    return list(rng.integers(0, model.spec.config.vocab, (CALIBRATION_SAMPLES, width)))


def _relative_error(reference: np.ndarray, other: np.ndarray) -> float:
    scale = float(np.linalg.norm(reference))
    diff = float(np.linalg.norm(other.astype(np.float64) - reference.astype(np.float64)))
    return diff / scale if scale > 0 else diff
