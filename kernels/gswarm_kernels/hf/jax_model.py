"""A Hugging Face model's tensors on one JAX device, answering right-padded id batches and
generating for causal models.

Batches are padded to a power-of-two row count and a bucketed width before the compiled forward
(the extra rows and columns are masked or causal-hidden and cut away), so a stream of varying
batches compiles a handful of shapes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..generation import generate_with
from ..inputs import check_sampling
from ..jax_infer import sample
from . import jax_forward
from .inputs import bucket
from .quantize import compute_params
from .spec import HFSpec


class JaxModel:
    """`spec`'s model with `params` on `device` (JAX's default device when None)."""

    def __init__(self, spec: HFSpec, params: Mapping[str, np.ndarray], device: Any = None) -> None:
        self.spec = spec
        self.device = device
        self.params: dict[str, jax.Array] = {
            name: jax.device_put(value, device) for name, value in compute_params(params).items()
        }

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Embeddings, class logits or next-token logits of `(n, t)` ids and their mask."""
        n, width = ids.shape
        rows = max(1, 1 << (n - 1).bit_length())
        padded = bucket(width, max(width, self.spec.config.positions))
        x = np.zeros((rows, padded), dtype=np.int32)
        m = np.zeros((rows, padded), dtype=np.int32)
        x[:n, :width], m[:n, :width] = ids, mask
        m[n:, 0] = 1  # filler rows attend to one token, so nothing divides by zero
        out = np.asarray(_forward(self.spec, self.params, x, m))[:n]
        return out[:, :width] if self.spec.generates else out

    def generate(
        self,
        prompts: Sequence[np.ndarray],
        *,
        max_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int = 0,
    ) -> list[list[int]]:
        """Generated ids only, per prompt; a row ends early at the end-of-text id."""
        if not self.spec.generates:
            raise ValueError(f"generate: a {self.spec.model_type} model does not generate")
        check_sampling(max_tokens, temperature, top_p)
        key = jax.random.key(seed)
        greedy = temperature == 0

        def step(tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
            nonlocal key
            key, sub = jax.random.split(key)
            n = len(tokens)
            rows = max(1, 1 << (n - 1).bit_length())
            x = np.zeros((rows, tokens.shape[1]), dtype=np.int32)
            lens = np.ones(rows, dtype=np.int32)
            x[:n], lens[:n] = tokens, lengths
            out = _next_tokens(
                self.spec, greedy, self.params, x, lens, sub, max(temperature, 1e-6), top_p
            )
            return np.asarray(out)[:n]

        c = self.spec.config
        return generate_with(
            {"context": c.positions, "vocab": c.vocab},
            prompts,
            max_tokens,
            temperature,
            top_p,
            step,
            width=lambda longest: bucket(longest, c.positions),
            stop=c.eos_id,
        )

    def memory_bytes(self) -> int:
        return sum(int(v.nbytes) for v in self.params.values())

    def close(self) -> None:
        params, self.params = self.params, {}
        for value in params.values():
            value.delete()


@functools.partial(jax.jit, static_argnums=0)
def _forward(
    spec: HFSpec, params: Mapping[str, jax.Array], ids: jax.Array, mask: jax.Array
) -> jax.Array:
    return jax_forward.forward(spec, params, ids, mask)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _next_tokens(  # type: ignore[no-untyped-def]
    spec: HFSpec, greedy: bool, params, tokens, lengths, key, temperature, top_p
) -> jax.Array:
    logits = jax_forward.gpt2_logits(spec, params, tokens)
    last = logits[jnp.arange(tokens.shape[0]), lengths - 1]
    if greedy:
        return jnp.argmax(last, axis=-1)
    return sample(last / temperature, top_p, key)
