"""Training a Hugging Face model (classifier or causal LM) with JAX and optax; the twin of
`hf.train_torch` (same data, same batch order, same optimizer maths)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import optax

from ..quantization import dequantize
from ..train_jax import batch_loss_of, fit, jitted_step, make_transform, own_copy
from ..training import EpochCallback, StopCheck, TrainResult, check_hyperparameters
from . import jax_forward
from .spec import HFSpec
from .tokenizer import TextTokenizer
from .training import hf_training_data


def train(
    spec: HFSpec,
    params: Mapping[str, np.ndarray],
    inputs: Any,
    labels: Any,
    *,
    tokenizer: TextTokenizer | None = None,
    epochs: int,
    learning_rate: float,
    optimizer: str = "adam",
    loss: str = "cross_entropy",
    batch_size: int = 32,
    gradient_clip_norm: float | None = None,
    weight_decay: float = 0.0,
    seed: int = 0,
    on_epoch: EpochCallback | None = None,
    should_stop: StopCheck | None = None,
) -> TrainResult:
    """Train from `params` on JAX's default device; same contract as `hf.train_torch.train`.

    Every batch keeps the full padded width, so the step compiles once (twice with a short last
    batch)."""
    check_hyperparameters(
        epochs=epochs,
        learning_rate=learning_rate,
        optimizer=optimizer,
        loss=loss,
        batch_size=batch_size,
        gradient_clip_norm=gradient_clip_norm,
        weight_decay=weight_decay,
    )
    data = hf_training_data(spec, tokenizer, inputs, labels, loss)
    tx, step = _compiled(
        spec, data.kind, optimizer, learning_rate, weight_decay, gradient_clip_norm
    )
    assert data.mask is not None
    return fit(tx, step, own_copy(dequantize(params)), data, epochs=epochs,
               batch_size=batch_size, seed=seed, on_epoch=on_epoch, should_stop=should_stop)


@functools.cache
def _compiled(
    spec: HFSpec, kind: str, optimizer: str, lr: float, weight_decay: float, clip: float | None
) -> tuple[optax.GradientTransformation, Callable[..., Any]]:
    """The optimizer and its jitted step, cached so repeated trainings compile once."""
    tx = make_transform(optimizer, lr, weight_decay, clip)

    def loss_fn(params, x, y, mask):  # type: ignore[no-untyped-def]
        return batch_loss_of(kind, jax_forward.forward(spec, params, x, mask), y, mask)

    return tx, jitted_step(tx, loss_fn)
