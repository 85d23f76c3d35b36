"""A request's rows for a Hugging Face model (strings or token-id rows) as id arrays, and batches
of variable-length rows as right-padded ids with their attention mask.

Messages name the field and give expected vs got, so callers pass them on as
`INVALID_INPUT_DATA`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..inputs import as_token_rows, pad_right
from .spec import HFSpec
from .tokenizer import TextTokenizer

MIN_BUCKET = 8


def model_rows(
    spec: HFSpec, tokenizer: TextTokenizer | None, data: Any, field: str = "input_data"
) -> list[np.ndarray]:
    """int64 id rows from a list of strings (tokenised here) or a list of token-id rows."""
    if (
        isinstance(data, (str, bytes))
        or not isinstance(data, (Sequence, np.ndarray))
        or len(data) == 0
    ):
        raise ValueError(
            f"{field}: expected a non-empty list of strings or of token-id rows, "
            f"got {_describe(data)}"
        )
    texts = [isinstance(row, str) for row in data]
    if all(texts):
        return _text_rows(tokenizer, list(data), field)
    if any(texts):
        raise ValueError(f"{field}: expected all strings or all token-id rows, got a mix")
    rows = as_token_rows({"vocab": spec.config.vocab}, data, field)
    if not spec.generates:
        limit = spec.config.positions
        for i, row in enumerate(rows):
            if len(row) > limit:
                raise ValueError(f"{field}[{i}]: expected at most {limit} tokens, got {len(row)}")
    return rows


def _text_rows(tokenizer: TextTokenizer | None, texts: list[str], field: str) -> list[np.ndarray]:
    if tokenizer is None:
        raise ValueError(
            f"{field}: expected token-id rows (the model has no tokenizer.json), got strings"
        )
    rows = tokenizer.encode(texts)
    for i, row in enumerate(rows):
        if len(row) == 0:
            raise ValueError(f"{field}[{i}]: expected a text that makes tokens, got {texts[i]!r}")
    return rows


def _describe(data: Any) -> str:
    if isinstance(data, (Sequence, np.ndarray)) and not isinstance(data, (str, bytes)):
        return "an empty list"
    return type(data).__name__


def pad_batch(
    rows: Sequence[np.ndarray], width: int | None = None, pad_id: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Rows right-padded with `pad_id` to `width` (the longest by default): int64 ids `(n, width)`
    and the int64 attention mask, 1 on real tokens."""
    width = max(len(row) for row in rows) if width is None else width
    ids, lengths = pad_right(rows, width)
    mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
    ids[mask == 0] = pad_id
    return ids, mask


def bucket(length: int, limit: int) -> int:
    """A power of two >= `length` (8 to `limit`), so JAX compiles a handful of widths."""
    return max(length, min(limit, max(MIN_BUCKET, 1 << (length - 1).bit_length())))
