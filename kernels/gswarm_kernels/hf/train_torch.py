"""Training a Hugging Face model (classifier or causal LM) with torch, functionally: the
checkpoint's tensors are the trainable leaves, and the result keeps their names and layouts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..quantization import dequantize
from ..train_torch import batch_loss_of, make_optimizer
from ..training import (
    EpochCallback,
    StopCheck,
    TrainResult,
    check_finite,
    check_hyperparameters,
    epoch_batches,
)
from . import torch_forward
from .spec import HFSpec
from .tokenizer import TextTokenizer
from .training import batch_width, hf_training_data


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
    device: str = "cpu",
) -> TrainResult:
    """Train from `params` (left untouched; quantised ones are widened to float32) and return
    float32 tensors under the same names. Same contract as `gswarm_kernels.train_torch.train`."""
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
    state = {
        name: torch.tensor(value, dtype=torch.float32, device=device, requires_grad=True)
        for name, value in dequantize(params).items()
    }
    opt = make_optimizer(optimizer, list(state.values()), learning_rate, weight_decay)
    x, y = torch.from_numpy(data.inputs).to(device), torch.from_numpy(data.targets).to(device)
    assert data.mask is not None
    mask = torch.from_numpy(data.mask).to(device)
    rng = np.random.default_rng(seed)
    history: list[float] = []
    steps = 0
    for epoch in range(1, epochs + 1):
        total = torch.zeros((), device=device)
        for rows in epoch_batches(len(x), batch_size, rng):
            if should_stop is not None and should_stop():
                return TrainResult(_to_numpy(state), history, steps)
            width = batch_width(data.mask[rows])
            index = torch.from_numpy(rows).to(device)
            bx, bm, by = x[index, :width], mask[index, :width], y[index]
            if data.kind == "tokens":
                by = by[:, :width]
            out = torch_forward.forward(spec, state, bx, bm)
            batch_loss = batch_loss_of(data.kind, out, by, bm)
            opt.zero_grad(set_to_none=True)
            batch_loss.backward()
            if gradient_clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(list(state.values()), gradient_clip_norm)
            opt.step()
            steps += 1
            total += batch_loss.detach() * len(rows)
        epoch_loss = total.item() / len(x)
        check_finite(epoch_loss, epoch)
        history.append(epoch_loss)
        if on_epoch is not None:
            on_epoch(epoch, epoch_loss)
    return TrainResult(_to_numpy(state), history, steps)


def _to_numpy(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {name: t.detach().to("cpu", torch.float32).numpy().copy() for name, t in state.items()}
