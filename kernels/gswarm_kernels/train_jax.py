"""Training a built-in model with JAX and optax.

One jitted call per batch does all of the batch's work: the training set goes to the device once
and each step gathers its rows there (it is given only their indices) and adds its loss to the
epoch's running total, so a step is one dispatch with no host-side copies. The step donates the
parameters, optimizer state and total it is given (`donate_argnums`): XLA writes the new ones
into the buffers of the last, instead of allocating a fresh set (a 1024-wide MLP: ~17 MB a
step) while the last waits to be freed. Measured on the benchmark's MLP in one process with one
malloc arena (as node workers then had): 1.10 s a loop and 110,000-160,000 minor faults with
neither, 0.90 s and ~0 with donation; gathering on the device and the total in the step took a
further 6-7% off (0.842 -> 0.789 s with glibc's default arenas), the same loss to the last digit.
Invariant: the state a step is given is the trainer's own copy, never the caller's arrays.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .builtin import normalize_config
from .jax_models import forward
from .params import Params, check_params
from .training import (
    EpochCallback,
    StopCheck,
    TrainingData,
    TrainResult,
    check_finite,
    check_hyperparameters,
    epoch_batches,
    training_data,
)


def train(
    arch: str,
    config: dict[str, Any],
    params: Params,
    inputs: Any,
    labels: Any,
    *,
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
    """Train from `params` (left untouched) and return the new parameters.

    Same contract as `train_torch.train`, on JAX's default device; the same seed gives the same
    batch order in both.
    """
    check_hyperparameters(
        epochs=epochs,
        learning_rate=learning_rate,
        optimizer=optimizer,
        loss=loss,
        batch_size=batch_size,
        gradient_clip_norm=gradient_clip_norm,
        weight_decay=weight_decay,
    )
    config = normalize_config(arch, config)
    data = training_data(arch, config, inputs, labels, loss)
    tx, step = _compiled(
        arch,
        json.dumps(config, sort_keys=True),
        data.kind,
        optimizer,
        learning_rate,
        weight_decay,
        gradient_clip_norm,
    )
    check_params(arch, config, params)
    return fit(tx, step, own_copy(params), data, epochs=epochs, batch_size=batch_size, seed=seed,
               on_epoch=on_epoch, should_stop=should_stop)


def fit(
    tx: optax.GradientTransformation,
    step: Callable[..., Any],
    state: dict[str, jax.Array],
    data: TrainingData,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    on_epoch: EpochCallback | None,
    should_stop: StopCheck | None,
) -> TrainResult:
    """The epoch loop of both JAX trainers: `step` (made by `jitted_step`) from `state` (the
    trainer's own, see `own_copy`) over `data`, put on the device once; `should_stop` is asked
    before each batch."""
    opt_state = tx.init(state)
    x, y = device_rows(data.inputs), device_rows(data.targets)
    mask = None if data.mask is None else jnp.asarray(data.mask)
    rng = np.random.default_rng(seed)
    history: list[float] = []
    steps = 0
    for epoch in range(1, epochs + 1):
        total = jnp.zeros(())
        for rows in epoch_batches(len(x), batch_size, rng):
            if should_stop is not None and should_stop():
                return TrainResult(_to_numpy(state), history, steps)
            state, opt_state, total = step(state, opt_state, total, x, y, mask,
                                           rows.astype(np.int32))
            steps += 1
        epoch_loss = float(total) / len(x)
        check_finite(epoch_loss, epoch)
        history.append(epoch_loss)
        if on_epoch is not None:
            on_epoch(epoch, epoch_loss)
    return TrainResult(_to_numpy(state), history, steps)


def make_transform(
    name: str, lr: float, weight_decay: float, clip: float | None
) -> optax.GradientTransformation:
    """The optax twin of the torch optimizer: clip first, then torch's coupled L2 for adam/sgd."""
    parts: list[optax.GradientTransformation] = []
    if clip is not None:
        parts.append(optax.clip_by_global_norm(clip))
    if name == "adamw":
        parts.append(optax.adamw(lr, weight_decay=weight_decay))
    else:
        if weight_decay:
            parts.append(optax.add_decayed_weights(weight_decay))
        parts.append(optax.adam(lr) if name == "adam" else optax.sgd(lr))
    return optax.chain(*parts)


@functools.cache
def _compiled(
    arch: str,
    config_json: str,
    kind: str,
    optimizer: str,
    lr: float,
    weight_decay: float,
    clip: float | None,
) -> tuple[optax.GradientTransformation, Callable[..., Any]]:
    """The optimizer and its jitted step, cached so repeated trainings compile once."""
    config = json.loads(config_json)
    tx = make_transform(optimizer, lr, weight_decay, clip)

    def loss_fn(params, x, y, mask):  # type: ignore[no-untyped-def]
        return batch_loss_of(kind, forward(arch, config, params, x), y, mask)

    return tx, jitted_step(tx, loss_fn)


def jitted_step(
    tx: optax.GradientTransformation, loss_fn: Callable[..., jax.Array]
) -> Callable[..., Any]:
    """The training step of both JAX trainers, `step(params, opt_state, total, x, y, mask, rows)`
    -> (params, opt_state, total + the batch's loss x its rows): it gathers the batch's `rows` of
    the device-resident `x`, `y` and `mask`, and donates the first three (see the module's
    docstring). `loss_fn(params, x, y, mask)` is one batch's mean loss."""

    @functools.partial(jax.jit, donate_argnums=(0, 1, 2))
    def step(params, opt_state, total, x, y, mask, rows):  # type: ignore[no-untyped-def]
        batch_mask = None if mask is None else mask[rows]
        loss, grads = jax.value_and_grad(loss_fn)(params, x[rows], y[rows], batch_mask)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, total + loss * rows.shape[0]

    return step


def device_rows(rows: np.ndarray) -> jax.Array:
    """A training set on the device once, integers as int32 (JAX's default width)."""
    return jnp.asarray(rows.astype(np.int32) if rows.dtype.kind == "i" else rows)


def own_copy(params: Mapping[str, Any]) -> dict[str, jax.Array]:
    """float32 device arrays of the trainer's own, safe to donate to the step (a device_put of
    a numpy array may share the caller's memory)."""
    return {name: jnp.array(value, dtype=jnp.float32, copy=True) for name, value in params.items()}


def batch_loss_of(
    kind: str, out: jax.Array, target: jax.Array, mask: jax.Array | None
) -> jax.Array:
    """Mean loss of a batch whose targets are of `kind` (see `TrainingData`)."""
    if kind == "values":
        return jnp.mean(jnp.square(out - target))
    log_probs = jax.nn.log_softmax(out, axis=-1)
    if kind == "probs":
        return -jnp.mean(jnp.sum(target * log_probs, axis=-1))
    nll = -jnp.take_along_axis(log_probs, target[..., None], axis=-1)[..., 0]
    if kind == "index":
        return jnp.mean(nll)
    assert mask is not None
    return jnp.sum(nll * mask) / jnp.sum(mask)


def _to_numpy(params: dict[str, jax.Array]) -> Params:
    return {name: np.array(value, dtype=np.float32) for name, value in params.items()}
