"""Training a built-in model with torch."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .builtin import normalize_config
from .params import Params
from .torch_models import build_module, module_params
from .training import (
    EpochCallback,
    StopCheck,
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
    device: str = "cpu",
) -> TrainResult:
    """Train from `params` (left untouched) and return the new parameters.

    `on_epoch(epoch, loss)` is called after each epoch (counted from 1); `should_stop()` is checked
    before every step and ends training early, returning what has been learnt so far.
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
    module = build_module(arch, config, params, device=device).train()
    opt = make_optimizer(optimizer, module.parameters(), learning_rate, weight_decay)
    x, y = torch.from_numpy(data.inputs).to(device), torch.from_numpy(data.targets).to(device)
    mask = None if data.mask is None else torch.from_numpy(data.mask).to(device)
    rng = np.random.default_rng(seed)
    history: list[float] = []
    steps = 0
    for epoch in range(1, epochs + 1):
        total = torch.zeros((), device=device)
        for rows in epoch_batches(len(x), batch_size, rng):
            if should_stop is not None and should_stop():
                return TrainResult(module_params(module), history, steps)
            index = torch.from_numpy(rows).to(device)
            batch_loss = batch_loss_of(
                data.kind, module(x[index]), y[index], None if mask is None else mask[index]
            )
            opt.zero_grad(set_to_none=True)
            batch_loss.backward()
            if gradient_clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(module.parameters(), gradient_clip_norm)
            opt.step()
            steps += 1
            total += batch_loss.detach() * len(rows)
        epoch_loss = total.item() / len(x)  # one device sync per epoch, not per step
        check_finite(epoch_loss, epoch)
        history.append(epoch_loss)
        if on_epoch is not None:
            on_epoch(epoch, epoch_loss)
    return TrainResult(module_params(module), history, steps)


def make_optimizer(
    name: str, parameters: Any, lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """The torch optimizer called `name` (one of `OPTIMIZERS`) over `parameters`."""
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(parameters, lr=lr, weight_decay=weight_decay)


def batch_loss_of(
    kind: str, out: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """Mean loss of a batch whose targets are of `kind` (see `TrainingData`)."""
    if kind == "values":
        return F.mse_loss(out, target)
    if kind == "index":
        return F.cross_entropy(out, target)
    if kind == "probs":
        return -(target * F.log_softmax(out, dim=-1)).sum(-1).mean()
    assert mask is not None
    nll = F.cross_entropy(out.flatten(0, 1), target.flatten(), reduction="none")
    return (nll * mask.flatten()).sum() / mask.sum()
