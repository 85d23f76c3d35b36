"""Training a Hugging Face model (classifier or causal LM) with JAX and optax; the twin of
`hf.train_torch` (same data, same batch order, same optimizer maths)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..quantization import dequantize
from ..train_jax import batch_loss_of, make_transform, own_copy
from ..training import (
    EpochCallback,
    StopCheck,
    TrainResult,
    check_finite,
    check_hyperparameters,
    epoch_batches,
)
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
    state = own_copy(dequantize(params))
    opt_state = tx.init(state)
    x = data.inputs.astype(np.int32)
    y = data.targets.astype(np.int32) if data.targets.dtype.kind == "i" else data.targets
    assert data.mask is not None
    rng = np.random.default_rng(seed)
    history: list[float] = []
    steps = 0
    for epoch in range(1, epochs + 1):
        total = jnp.zeros(())
        for rows in epoch_batches(len(x), batch_size, rng):
            if should_stop is not None and should_stop():
                return TrainResult(_to_numpy(state), history, steps)
            state, opt_state, batch_loss = step(state, opt_state, x[rows], data.mask[rows], y[rows])
            steps += 1
            total = total + batch_loss * len(rows)
        epoch_loss = float(total) / len(x)
        check_finite(epoch_loss, epoch)
        history.append(epoch_loss)
        if on_epoch is not None:
            on_epoch(epoch, epoch_loss)
    return TrainResult(_to_numpy(state), history, steps)


@functools.cache
def _compiled(
    spec: HFSpec, kind: str, optimizer: str, lr: float, weight_decay: float, clip: float | None
) -> tuple[optax.GradientTransformation, Callable[..., Any]]:
    """The optimizer and its jitted step, cached so repeated trainings compile once."""
    tx = make_transform(optimizer, lr, weight_decay, clip)

    def loss_fn(params, x, mask, y):  # type: ignore[no-untyped-def]
        return batch_loss_of(kind, jax_forward.forward(spec, params, x, mask), y, mask)

    @functools.partial(jax.jit, donate_argnums=(0, 1))  # see train_jax: buffers reused
    def step(params, opt_state, x, mask, y):  # type: ignore[no-untyped-def]
        loss, grads = jax.value_and_grad(loss_fn)(params, x, mask, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return tx, step


def _to_numpy(params: dict[str, jax.Array]) -> dict[str, np.ndarray]:
    return {name: np.array(value, dtype=np.float32) for name, value in params.items()}
