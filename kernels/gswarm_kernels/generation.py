"""The autoregressive loop both frameworks share; each supplies its own forward-and-sample step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .inputs import as_token_rows, check_sampling, pad_right

# step(tokens (batch, width) int64, lengths (batch,) int64) -> next token per row (batch,)
Step = Callable[[np.ndarray, np.ndarray], np.ndarray]


def generate_with(
    config: dict[str, Any],
    prompts: Any,
    max_tokens: int,
    temperature: float,
    top_p: float,
    step: Step,
    width: Callable[[int], int] = lambda longest: longest,
    stop: int | None = None,
) -> list[list[int]]:
    """Generated tokens only (not the prompt), each step seeing the last `context` tokens.

    `width(longest)` picks the padded width of a step's batch (JAX buckets it to limit recompiles).
    A row that generates `stop` (an end-of-text id) ends there, `stop` included; the others go on.
    """
    rows = as_token_rows(config, prompts, field="prompts")
    check_sampling(max_tokens, temperature, top_p)
    context = config["context"]
    sequences = [list(map(int, row)) for row in rows]
    generated: list[list[int]] = [[] for _ in rows]
    active = list(range(len(rows)))
    for _ in range(max_tokens):
        if not active:
            break
        windows = [np.asarray(sequences[i][-context:], dtype=np.int64) for i in active]
        longest = max(len(w) for w in windows)
        tokens, lengths = pad_right(windows, min(context, max(longest, width(longest))))
        next_tokens = step(tokens, lengths)
        for i, token in zip(active, next_tokens.tolist(), strict=True):
            sequences[i].append(token)
            generated[i].append(token)
        active = [i for i in active if stop is None or generated[i][-1] != stop]
    return generated
