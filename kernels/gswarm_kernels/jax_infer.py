"""Inference with the JAX twins on JAX's default device."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .builtin import normalize_config
from .generation import generate_with
from .inputs import as_token_matrix, as_vectors, check_batch_size
from .jax_models import device_params, forward, jitted_forward


def predict(
    arch: str,
    config: dict[str, Any],
    params: Mapping[str, Any],
    data: Any,
    *,
    batch_size: int | None = None,
) -> np.ndarray:
    """mlp: rows `(n, in)` -> `(n, out)`; gpt: equal-length token rows -> logits `(n, time, vocab)`.

    Rows go through in chunks of `batch_size` (all at once by default).
    """
    check_batch_size(batch_size)
    config = normalize_config(arch, config)
    x = (
        as_vectors(config, data)
        if arch == "mlp"
        else as_token_matrix(config, data).astype(np.int32)
    )
    params = _on_device(arch, config, params)
    fn = jitted_forward(arch, config)
    step = batch_size or len(x)
    return np.concatenate([np.asarray(fn(params, x[i : i + step])) for i in range(0, len(x), step)])


def generate(
    arch: str,
    config: dict[str, Any],
    params: Mapping[str, Any],
    prompts: Any,
    *,
    max_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
) -> list[list[int]]:
    """gpt: `max_tokens` new tokens per prompt (prompts may be ragged); temperature 0 is greedy."""
    if arch != "gpt":
        raise ValueError(f"generate: {arch} is not a language model")
    config = normalize_config(arch, config)
    params = _on_device(arch, config, params)
    fn = _next_tokens(json.dumps(config, sort_keys=True), temperature == 0)
    key = jax.random.key(seed)

    def step(tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        nonlocal key
        key, sub = jax.random.split(key)
        # JAX's default integers are 32-bit: convert here not by a truncation warning.
        out = fn(
            params,
            tokens.astype(np.int32),
            lengths.astype(np.int32),
            sub,
            max(temperature, 1e-6),
            top_p,
        )
        return np.asarray(out)

    return generate_with(config, prompts, max_tokens, temperature, top_p, step, width=_bucket)


def _bucket(longest: int) -> int:
    """A power of two, so a generation compiles a handful of shapes rather than one per step."""
    return max(8, 1 << (longest - 1).bit_length())


@functools.cache
def _next_tokens(config_json: str, greedy: bool) -> Callable[..., jax.Array]:
    config = json.loads(config_json)

    @jax.jit
    def next_tokens(params, tokens, lengths, key, temperature, top_p):  # type: ignore[no-untyped-def]
        logits = forward("gpt", config, params, tokens)
        last = logits[jnp.arange(tokens.shape[0]), lengths - 1]
        if greedy:
            return jnp.argmax(last, axis=-1)
        return sample(last / temperature, top_p, key)

    return next_tokens


def sample(logits: jax.Array, top_p: float | jax.Array, key: jax.Array) -> jax.Array:
    """Nucleus sampling of one token per row of temperature-scaled `(batch, vocab)` logits."""
    order = jnp.argsort(-logits, axis=-1)
    sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
    sorted_probs = jax.nn.softmax(sorted_logits, axis=-1)
    # Keep the smallest prefix whose mass reaches top_p (always at least the top token).
    outside = (jnp.cumsum(sorted_probs, axis=-1) - sorted_probs) >= top_p
    choice = jax.random.categorical(key, jnp.where(outside, -jnp.inf, sorted_logits), axis=-1)
    return jnp.take_along_axis(order, choice[:, None], axis=-1)[:, 0]


def _on_device(arch: str, config: dict[str, Any], params: Mapping[str, Any]) -> Mapping[str, Any]:
    if all(isinstance(value, jax.Array) for value in params.values()):
        return params
    return device_params(arch, config, params)
