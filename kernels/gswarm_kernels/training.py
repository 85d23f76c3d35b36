"""What both training loops share: argument checks, training data as arrays, batch order, result."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .builtin import normalize_config
from .inputs import as_token_rows, as_vectors, check_int, check_number, pad_right
from .params import Params

OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd")
LOSSES: tuple[str, ...] = ("cross_entropy", "mse")

EpochCallback = Callable[[int, float], None]
StopCheck = Callable[[], bool]


class TrainResult(NamedTuple):
    params: Params
    loss_history: list[float]  # one mean training loss per completed epoch
    steps: int


@dataclass(frozen=True)
class TrainingData:
    """Arrays ready for a loss. `kind` says what `targets` hold: "index" (class ids, int64),
    "probs" (class-probability rows), "values" (regression rows) or "tokens" (gpt: a target id per
    position, with `mask` marking the real positions of the right-padded rows)."""

    inputs: np.ndarray
    targets: np.ndarray
    kind: str
    mask: np.ndarray | None = None


def check_hyperparameters(
    *,
    epochs: int,
    learning_rate: float,
    optimizer: str,
    loss: str,
    batch_size: int,
    gradient_clip_norm: float | None,
    weight_decay: float,
) -> None:
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {list(OPTIMIZERS)}, got {optimizer!r}")
    if loss not in LOSSES:
        raise ValueError(f"loss_function: expected one of {list(LOSSES)}, got {loss!r}")
    check_int("epochs", epochs, 0)
    check_int("batch_size", batch_size, 1)
    check_number("learning_rate", learning_rate, 0, allow_minimum=False)
    check_number("weight_decay", weight_decay, 0)
    if gradient_clip_norm is not None:
        check_number("gradient_clip_norm", gradient_clip_norm, 0, allow_minimum=False)


def training_data(
    arch: str, config: dict[str, Any], inputs: Any, labels: Any, loss: str
) -> TrainingData:
    """Check training rows and labels against the model and turn them into arrays."""
    config = normalize_config(arch, config)
    if arch == "gpt":
        if loss != "cross_entropy":
            raise ValueError(
                f"loss_function: a language model trains with cross_entropy, got {loss!r}"
            )
        return next_token_data(config, inputs, labels)
    x = as_vectors(config, inputs, field="training_data")
    if labels is None:
        raise ValueError("labels: required for mlp")
    targets, kind = class_targets(labels, len(x), config["out"], loss)
    return TrainingData(x, targets, kind)


def class_targets(labels: Any, rows: int, width: int, loss: str) -> tuple[np.ndarray, str]:
    """Labels of `rows` rows for outputs of `width`, and what they hold: "index" (class ids),
    "probs" (probability rows) for cross_entropy, "values" (target rows) for mse."""
    try:
        y = np.asarray(labels)
    except ValueError:
        raise ValueError("labels: ragged rows") from None
    if y.ndim == 0 or len(y) != rows:
        raise ValueError(
            f"labels: expected {rows} entries (one per row), got {len(y) if y.ndim else 0}"
        )
    if loss == "mse":
        if y.ndim == 1 and width == 1:
            y = y[:, None]
        if y.ndim != 2 or y.shape[1] != width or y.dtype.kind not in "iuf":
            raise ValueError(f"labels: expected target rows of width {width}, got shape {y.shape}")
        return y.astype(np.float32), "values"
    if y.ndim == 1:
        if y.dtype.kind == "f" and np.all(y == np.floor(y)):
            y = y.astype(np.int64)
        if y.dtype.kind not in "iu":
            raise ValueError(f"labels: expected integer class indices, got dtype {y.dtype}")
        if y.min() < 0 or y.max() >= width:
            bad = int(y.min()) if y.min() < 0 else int(y.max())
            raise ValueError(f"labels: class indices must be in [0, {width}), got {bad}")
        return y.astype(np.int64), "index"
    if y.ndim != 2 or y.shape[1] != width or y.dtype.kind not in "iuf":
        raise ValueError(
            f"labels: expected class indices or probability rows of width {width}, "
            f"got shape {y.shape}"
        )
    return y.astype(np.float32), "probs"


def next_token_data(config: dict[str, Any], inputs: Any, labels: Any) -> TrainingData:
    """Token rows for next-token training (`config` gives `vocab` and `context`): each row is its
    own target shifted by one, or `labels` holds a target row per row."""
    rows = as_token_rows(config, inputs, field="training_data")
    context = config["context"]
    if labels is None:  # next-token prediction: each row is its own target, shifted by one
        for i, row in enumerate(rows):
            if not 2 <= len(row) <= context + 1:
                raise ValueError(
                    f"training_data[{i}]: expected 2 to {context + 1} tokens for next-token "
                    f"training, got {len(row)}"
                )
        sources, targets = [row[:-1] for row in rows], [row[1:] for row in rows]
    else:
        targets = as_token_rows(config, labels, field="labels")
        if len(targets) != len(rows):
            raise ValueError(
                f"labels: expected {len(rows)} rows (one per input row), got {len(targets)}"
            )
        for i, (row, target) in enumerate(zip(rows, targets, strict=True)):
            if len(target) != len(row):
                raise ValueError(
                    f"labels[{i}]: expected {len(row)} tokens (as its input row), got {len(target)}"
                )
            if len(row) > context:
                raise ValueError(
                    f"training_data[{i}]: expected at most {context} tokens, got {len(row)}"
                )
        sources = rows
    width = max(len(row) for row in sources)
    x, lengths = pad_right(sources, width)
    y, _ = pad_right(targets, width)
    mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.float32)
    return TrainingData(x, y, "tokens", mask)


def epoch_batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Row indices of each batch of one epoch, shuffled by `rng` (same order in both frameworks)."""
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def check_finite(loss: float, epoch: int) -> None:
    if not math.isfinite(loss):
        raise FloatingPointError(f"training loss became {loss} in epoch {epoch}")
