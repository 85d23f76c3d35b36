"""JAX twin of `torch_forward`: the same functions over a dict of `jax.Array`, jit-able with the
(hashable) spec static.

Dynamic int8 linear layers compute as in the torch twin: activation rows quantised at run time,
integer products in float32, rescaled by both scales.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from ..quantization import SCALE_SUFFIX
from .spec import HFSpec

JaxParams = Mapping[str, jax.Array]


def forward(spec: HFSpec, params: JaxParams, ids: jax.Array, mask: jax.Array) -> jax.Array:
    """What the model type answers per row (see `torch_forward.forward`)."""
    if spec.model_type == "embedding":
        return embed(spec, params, ids, mask)
    if spec.model_type == "classifier":
        return classify(spec, params, ids, mask)
    return gpt2_logits(spec, params, ids)


def linear(params: JaxParams, name: str, x: jax.Array, in_out: bool = False) -> jax.Array:
    weight = params[f"{name}.weight"]
    bias = params.get(f"{name}.bias")
    scale = params.get(f"{name}.weight{SCALE_SUFFIX}")
    if scale is not None:
        y = _int8_matmul(x, weight, scale, in_out)
    else:
        y = x @ (weight if in_out else weight.T)
    return y if bias is None else y + bias


def _int8_matmul(x: jax.Array, q: jax.Array, scale: jax.Array, in_out: bool) -> jax.Array:
    peak = jnp.abs(x).max(-1, keepdims=True)
    x_scale = jnp.where(peak > 0, peak / 127.0, 1.0)
    xq = jnp.clip(jnp.round(x / x_scale), -127, 127)
    w = q.astype(x.dtype)
    return (xq @ (w if in_out else w.T)) * x_scale * scale.reshape(-1)


def _layer_norm(params: JaxParams, name: str, x: jax.Array, eps: float) -> jax.Array:
    mean = x.mean(-1, keepdims=True)
    var = jnp.square(x - mean).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps) * params[f"{name}.weight"] + params[f"{name}.bias"]


def _act(kind: str, x: jax.Array) -> jax.Array:
    if kind == "relu":
        return jax.nn.relu(x)
    return jax.nn.gelu(x, approximate=kind == "gelu_new")


def _heads(x: jax.Array, heads: int) -> jax.Array:
    batch, time, width = x.shape
    return x.reshape(batch, time, heads, width // heads)  # (b, t, heads, size): JAX's layout


def _merge(x: jax.Array) -> jax.Array:
    batch, time, heads, size = x.shape
    return x.reshape(batch, time, heads * size)


def bert_hidden(spec: HFSpec, params: JaxParams, ids: jax.Array, mask: jax.Array) -> jax.Array:
    c, p = spec.config, spec.prefix
    time = ids.shape[1]
    x = (
        params[f"{p}embeddings.word_embeddings.weight"][ids]
        + params[f"{p}embeddings.position_embeddings.weight"][:time]
        + params[f"{p}embeddings.token_type_embeddings.weight"][0]
    )
    x = _layer_norm(params, f"{p}embeddings.LayerNorm", x, c.eps)
    keep = mask[:, None, None, :].astype(bool)
    for i in range(c.layers):
        b = f"{p}encoder.layer.{i}"
        q, k, v = (
            _heads(linear(params, f"{b}.attention.self.{part}", x), c.heads)
            for part in ("query", "key", "value")
        )
        context = _merge(jax.nn.dot_product_attention(q, k, v, mask=keep))
        x = _layer_norm(
            params,
            f"{b}.attention.output.LayerNorm",
            x + linear(params, f"{b}.attention.output.dense", context),
            c.eps,
        )
        h = _act(c.act, linear(params, f"{b}.intermediate.dense", x))
        x = _layer_norm(
            params, f"{b}.output.LayerNorm", x + linear(params, f"{b}.output.dense", h), c.eps
        )
    return x


def pool(spec: HFSpec, hidden: jax.Array, mask: jax.Array) -> jax.Array:
    weights = mask[..., None].astype(hidden.dtype)
    counts = jnp.maximum(weights.sum(1), 1e-9)
    parts = []
    for mode in spec.pooling:
        if mode == "cls":
            parts.append(hidden[:, 0])
        elif mode == "max":
            parts.append(jnp.where(weights == 0, -1e9, hidden).max(1))
        elif mode == "mean":
            parts.append((hidden * weights).sum(1) / counts)
        else:  # mean_sqrt_len
            parts.append((hidden * weights).sum(1) / jnp.sqrt(counts))
    out = jnp.concatenate(parts, axis=-1)
    if spec.normalize:
        out = out / jnp.maximum(jnp.linalg.norm(out, axis=-1, keepdims=True), 1e-12)
    return out


def embed(spec: HFSpec, params: JaxParams, ids: jax.Array, mask: jax.Array) -> jax.Array:
    return pool(spec, bert_hidden(spec, params, ids, mask), mask)


def classify(spec: HFSpec, params: JaxParams, ids: jax.Array, mask: jax.Array) -> jax.Array:
    hidden = bert_hidden(spec, params, ids, mask)
    pooled = jnp.tanh(linear(params, f"{spec.prefix}pooler.dense", hidden[:, 0]))
    return linear(params, "classifier", pooled)


def gpt2_logits(spec: HFSpec, params: JaxParams, ids: jax.Array) -> jax.Array:
    c, p = spec.config, spec.prefix
    time = ids.shape[1]
    if time > c.positions:
        raise ValueError(f"sequence length: expected at most {c.positions}, got {time}")
    x = params[f"{p}wte.weight"][ids] + params[f"{p}wpe.weight"][:time]
    for i in range(c.layers):
        b = f"{p}h.{i}"
        qkv = linear(params, f"{b}.attn.c_attn", _layer_norm(params, f"{b}.ln_1", x, c.eps), True)
        q, k, v = (_heads(t, c.heads) for t in jnp.split(qkv, 3, axis=-1))
        y = _merge(jax.nn.dot_product_attention(q, k, v, is_causal=True))
        x = x + linear(params, f"{b}.attn.c_proj", y, True)
        h = _act(
            c.act, linear(params, f"{b}.mlp.c_fc", _layer_norm(params, f"{b}.ln_2", x, c.eps), True)
        )
        x = x + linear(params, f"{b}.mlp.c_proj", h, True)
    x = _layer_norm(params, f"{p}ln_f", x, c.eps)
    return x @ params.get("lm_head.weight", params[f"{p}wte.weight"]).T
