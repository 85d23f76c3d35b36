"""Checks that turn caller data into well-formed numpy arrays for one model, or raise ValueError.

Messages name the field and give expected vs got, so callers can pass them on as
`INVALID_INPUT_DATA`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def as_vectors(config: dict[str, Any], data: Any, field: str = "input_data") -> np.ndarray:
    """mlp input: float32 `(rows, in)`."""
    width = config["in"]
    try:
        x = np.asarray(data, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(
            f"{field}: expected rows of {width} numbers, got ragged or non-numeric rows"
        ) from None
    if x.ndim != 2 or x.shape[1] != width or x.shape[0] == 0:
        raise ValueError(f"{field}: expected shape (rows, {width}), got {x.shape}")
    return x


def as_token_rows(config: dict[str, Any], data: Any, field: str = "input_data") -> list[np.ndarray]:
    """Language-model input: non-empty rows (lengths may differ) of int64 token ids < vocab."""
    if isinstance(data, np.ndarray) and data.ndim == 2:
        data = list(data)
    if (
        isinstance(data, (str, bytes))
        or not isinstance(data, (Sequence, np.ndarray))
        or len(data) == 0
    ):
        raise ValueError(
            f"{field}: expected a non-empty list of token-id rows, got {type(data).__name__}"
        )
    vocab = config["vocab"]
    rows = []
    for i, row in enumerate(data):
        arr = np.asarray(row)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(
                f"{field}[{i}]: expected a non-empty row of token ids, got shape {arr.shape}"
            )
        if arr.dtype.kind not in "iu":
            if (
                arr.dtype.kind != "f"
                or not np.all(np.isfinite(arr))
                or np.any(arr != np.floor(arr))
            ):
                raise ValueError(f"{field}[{i}]: expected integer token ids, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
        low, high = int(arr.min()), int(arr.max())
        if low < 0 or high >= vocab:
            bad = low if low < 0 else high
            raise ValueError(f"{field}[{i}]: token ids must be in [0, {vocab}), got {bad}")
        rows.append(arr)
    return rows


def as_token_matrix(config: dict[str, Any], data: Any, field: str = "input_data") -> np.ndarray:
    """Language-model input of equal-length rows, at most `context` long: int64 `(rows, time)`."""
    rows = as_token_rows(config, data, field)
    lengths = {len(row) for row in rows}
    if len(lengths) > 1:
        raise ValueError(f"{field}: expected rows of equal length, got lengths {sorted(lengths)}")
    (length,) = lengths
    if length > config["context"]:
        raise ValueError(
            f"{field}: expected rows of at most {config['context']} tokens, got {length}"
        )
    return np.stack(rows)


def check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")


def check_number(name: str, value: Any, minimum: float, *, allow_minimum: bool = True) -> None:
    """A finite real number above `minimum` (or equal to it when `allow_minimum`)."""
    ok = (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= minimum if allow_minimum else value > minimum)
    )
    if not ok:
        relation = ">=" if allow_minimum else ">"
        raise ValueError(f"{name}: expected a number {relation} {minimum}, got {value!r}")


def check_batch_size(batch_size: int | None) -> None:
    if batch_size is not None:
        check_int("batch_size", batch_size, 1)


def check_sampling(max_tokens: int, temperature: float, top_p: float) -> None:
    check_int("max_tokens", max_tokens, 0)
    check_number("temperature", temperature, 0)
    check_number("top_p", top_p, 0, allow_minimum=False)
    if top_p > 1:
        raise ValueError(f"top_p: expected a number in (0, 1], got {top_p!r}")


def pad_right(rows: Sequence[np.ndarray], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows left-aligned in an int64 `(len(rows), width)` zero-padded array, and their lengths.

    Right padding is harmless for a causal model: no real position attends to a later one.
    """
    tokens = np.zeros((len(rows), width), dtype=np.int64)
    lengths = np.empty(len(rows), dtype=np.int64)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = row
        lengths[i] = len(row)
    return tokens, lengths
