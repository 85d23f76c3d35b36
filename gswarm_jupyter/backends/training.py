"""Training and quantisation as the cluster asks for them, dispatched to the framework's kernels
(`gswarm_kernels.train_torch` or `train_jax`, the quantisation kernels), imported where used."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .base import invalid_input
from .devices import framework_device


def losses_and_optimizers() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The loss functions and optimisers training knows."""
    from gswarm_kernels.training import LOSSES, OPTIMIZERS

    return tuple(LOSSES), tuple(OPTIMIZERS)


def checked_arrays(arch: str, config: dict[str, Any], inputs: Any, labels: Any,
                   loss: str) -> tuple[Any, Any]:
    """Inline rows and labels checked against the model (`ValueError` saying what is wrong):
    a built-in mlp's as the arrays its kernel makes of them (float32 rows; targets as
    `class_targets` reads them, which reads them back unchanged), so that they cross to the
    worker as buffers instead of Python lists pickled number by number (4,096 rows of 32: ~2 ms
    to convert against ~60 ms to pickle and ~45 ms to unpickle the lists, measured); anything
    else (a language model's token rows) as it came."""
    from gswarm_kernels.training import training_data

    data = training_data(arch, config, inputs, labels, loss)
    if arch != "mlp":
        return inputs, labels
    return data.inputs, data.targets


def inline_arrays(arch: str | None, config: dict[str, Any], inputs: Any, labels: Any,
                  loss: str) -> tuple[Any, Any]:
    """`checked_arrays`, or the rows as they came where they do not check (the worker's kernel
    says what is wrong) or the model is no built-in mlp."""
    if arch != "mlp" or inputs is None or labels is None:
        return inputs, labels
    try:
        return checked_arrays(arch, config, inputs, labels, loss)
    except ValueError:
        return inputs, labels


def label_classes(labels: Any) -> int:
    """Classes the labels of an embedding model's new classification head name: the width of
    one-hot rows, else the largest index + 1 (at least 2); `ValueError` naming `labels`."""
    if not isinstance(labels, Sequence) or isinstance(labels, (str, bytes)) or not labels:
        got = "none" if labels is None or labels == [] else type(labels).__name__
        raise ValueError("labels: expected one class index or one-hot row per row to train a "
                         f"classification head, got {got}")
    first = labels[0]
    if isinstance(first, Sequence) and not isinstance(first, (str, bytes)):
        return max(1, len(first))
    try:
        top = max(int(v) for v in labels)
    except (TypeError, ValueError):
        raise ValueError("labels: expected integer class indices or one-hot rows, got "
                         f"{type(first).__name__}") from None
    return max(2, top + 1)


def check_hf_rows(model_type: str, num_labels: int | None, inputs: Any, labels: Any,
                  loss: str) -> None:
    """`ValueError` unless inline rows and labels can train a Hugging Face model of `model_type`
    (what needs its tokenizer is checked where it trains): rows all strings or all token-id rows;
    a classifier's (or an embedding model's new head's) labels one per row, of its classes; a
    causal model's next-token loss."""
    from gswarm_kernels.training import class_targets

    if not isinstance(inputs, list) or not inputs:
        raise ValueError("training_data: expected a non-empty list of strings or of token-id "
                         f"rows, got {type(inputs).__name__ if inputs else 'an empty list'}")
    texts = [isinstance(row, str) for row in inputs]
    if any(texts) and not all(texts):
        raise ValueError("training_data: expected all strings or all token-id rows, got a mix")
    if not any(texts) and not all(
        isinstance(row, list) and row and all(type(v) is int for v in row) for row in inputs
    ):
        raise ValueError("training_data: expected strings or token-id rows (non-empty lists of "
                         "integers)")
    if model_type == "causal_lm":
        if loss != "cross_entropy":
            raise ValueError(
                f"loss_function: a language model trains with cross_entropy, got {loss!r}")
        return
    width = num_labels if model_type == "classifier" and num_labels else label_classes(labels)
    class_targets(labels, len(inputs), width, loss)


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
