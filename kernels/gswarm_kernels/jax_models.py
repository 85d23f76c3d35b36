"""JAX twins of the built-in architectures: pure functions over the shared parameter dict."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .builtin import normalize_config
from .params import LAYER_NORM_EPS, check_params

JaxParams = Mapping[str, jax.Array]


def forward(arch: str, config: dict[str, Any], params: JaxParams, x: jax.Array) -> jax.Array:
    """mlp: `(batch, in)` -> `(batch, out)`; gpt: ids `(b, t)` -> logits `(b, t, vocab)`.

    Pure and jit-able with `arch` and `config` closed over (see `jitted_forward`).
    """
    if arch == "mlp":
        return _mlp(config, params, x)
    if arch == "gpt":
        return _gpt(config, params, x)
    raise ValueError(f"arch: unknown architecture {arch!r}")


def jitted_forward(
    arch: str, config: dict[str, Any]
) -> Callable[[JaxParams, jax.Array], jax.Array]:
    """A compiled `forward(params, x)` for one architecture and config, cached."""
    config = normalize_config(arch, config)
    return _jitted(arch, json.dumps(config, sort_keys=True))


@functools.cache
def _jitted(arch: str, config_json: str) -> Callable[[JaxParams, jax.Array], jax.Array]:
    config = json.loads(config_json)
    return jax.jit(functools.partial(forward, arch, config))


def device_params(
    arch: str, config: dict[str, Any], params: Mapping[str, np.ndarray]
) -> dict[str, jax.Array]:
    """Check numpy parameters and put them on JAX's default device as float32."""
    check_params(arch, config, params)
    return {
        name: jax.device_put(np.asarray(value, dtype=np.float32)) for name, value in params.items()
    }


def _linear(params: JaxParams, name: str, x: jax.Array) -> jax.Array:
    y = x @ params[f"{name}.weight"].T
    bias = params.get(f"{name}.bias")
    return y if bias is None else y + bias


def _layer_norm(params: JaxParams, name: str, x: jax.Array) -> jax.Array:
    mean = x.mean(-1, keepdims=True)
    var = jnp.square(x - mean).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + LAYER_NORM_EPS) * params[f"{name}.weight"] + params[
        f"{name}.bias"
    ]


def _gelu(x: jax.Array) -> jax.Array:
    return jax.nn.gelu(x, approximate=False)  # torch's default GELU is the exact erf form


def _mlp(config: dict[str, Any], params: JaxParams, x: jax.Array) -> jax.Array:
    act = jax.nn.relu if config["activation"] == "relu" else _gelu
    n_layers = len(config["hidden"]) + 1
    for i in range(n_layers):
        x = _linear(params, f"layers.{i}", x)
        if i < n_layers - 1:
            x = act(x)
    return x


def _attention(params: JaxParams, name: str, x: jax.Array, heads: int) -> jax.Array:
    batch, time, d = x.shape
    q, k, v = jnp.split(_linear(params, f"{name}.qkv", x), 3, axis=-1)
    q, k, v = (t.reshape(batch, time, heads, d // heads) for t in (q, k, v))
    y = jax.nn.dot_product_attention(q, k, v, is_causal=True)
    return _linear(params, f"{name}.proj", y.reshape(batch, time, d))


def _gpt(config: dict[str, Any], params: JaxParams, tokens: jax.Array) -> jax.Array:
    time = tokens.shape[1]
    if time > config["context"]:
        raise ValueError(f"sequence length: expected at most {config['context']}, got {time}")
    x = params["tok_emb.weight"][tokens] + params["pos_emb.weight"][:time]
    for i in range(config["layers"]):
        b = f"blocks.{i}"
        x = x + _attention(params, f"{b}.attn", _layer_norm(params, f"{b}.ln1", x), config["heads"])
        h = _gelu(_linear(params, f"{b}.mlp.fc", _layer_norm(params, f"{b}.ln2", x)))
        x = x + _linear(params, f"{b}.mlp.proj", h)
    return _linear(params, "head", _layer_norm(params, "ln_f", x))
