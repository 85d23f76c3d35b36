"""torch twin of the Hugging Face architectures: pure functions over a dict of tensors named as in
the checkpoint (see `layout`), mirrored line for line by `jax_forward`.

BERT is post-LayerNorm with padded keys masked out; GPT-2 is pre-LayerNorm and causal, so rows
right-padded need no mask. A linear weight stored int8 (with its `.qscale`) runs as dynamic int8:
each activation row is quantised to int8 with its own scale at run time, multiplied by the int8
weight, and rescaled (the integer products are exact in float32 up to 2**24).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from ..quantization import SCALE_SUFFIX
from .spec import HFSpec

TorchParams = Mapping[str, torch.Tensor]


def forward(
    spec: HFSpec, params: TorchParams, ids: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """What the model type answers per row: embeddings `(b, d)`, class logits `(b, labels)`, or
    next-token logits `(b, t, vocab)` for a causal model."""
    if spec.model_type == "embedding":
        return embed(spec, params, ids, mask)
    if spec.model_type == "classifier":
        return classify(spec, params, ids, mask)
    return gpt2_logits(spec, params, ids)


def linear(params: TorchParams, name: str, x: torch.Tensor, in_out: bool = False) -> torch.Tensor:
    """`x @ W + b` for a weight stored `(in, out)`, `x @ W.T + b` for `(out, in)`."""
    weight = params[f"{name}.weight"]
    bias = params.get(f"{name}.bias")
    scale = params.get(f"{name}.weight{SCALE_SUFFIX}")
    if scale is not None:
        y = _int8_matmul(x, weight, scale, in_out)
        return y if bias is None else y + bias
    if in_out:
        y = x @ weight
        return y if bias is None else y + bias
    return F.linear(x, weight, bias)


def _int8_matmul(
    x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor, in_out: bool
) -> torch.Tensor:
    peak = x.abs().amax(-1, keepdim=True)
    x_scale = torch.where(peak > 0, peak / 127.0, torch.ones_like(peak))
    xq = torch.clamp(torch.round(x / x_scale), -127, 127)
    w = q.to(x.dtype)
    return (xq @ (w if in_out else w.T)) * x_scale * scale.reshape(-1)


def _layer_norm(params: TorchParams, name: str, x: torch.Tensor, eps: float) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], params[f"{name}.weight"], params[f"{name}.bias"], eps)


def _act(kind: str, x: torch.Tensor) -> torch.Tensor:
    if kind == "relu":
        return F.relu(x)
    return F.gelu(x, approximate="tanh" if kind == "gelu_new" else "none")


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    batch, time, width = x.shape
    return x.view(batch, time, heads, width // heads).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    batch, heads, time, size = x.shape
    return x.transpose(1, 2).reshape(batch, time, heads * size)


def bert_hidden(
    spec: HFSpec, params: TorchParams, ids: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Last hidden states `(b, t, d)`; padded keys (mask 0) get no attention."""
    c, p = spec.config, spec.prefix
    time = ids.shape[1]
    x = (
        F.embedding(ids, params[f"{p}embeddings.word_embeddings.weight"])
        + params[f"{p}embeddings.position_embeddings.weight"][:time]
        + params[f"{p}embeddings.token_type_embeddings.weight"][0]
    )
    x = _layer_norm(params, f"{p}embeddings.LayerNorm", x, c.eps)
    keep = mask[:, None, None, :].bool()
    for i in range(c.layers):
        b = f"{p}encoder.layer.{i}"
        q, k, v = (
            _heads(linear(params, f"{b}.attention.self.{part}", x), c.heads)
            for part in ("query", "key", "value")
        )
        context = _merge(F.scaled_dot_product_attention(q, k, v, attn_mask=keep))
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


def pool(spec: HFSpec, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sentence-transformers' pooling (modes concatenated in its order), then L2 if asked."""
    weights = mask[..., None].to(hidden.dtype)
    counts = weights.sum(1).clamp(min=1e-9)
    parts = []
    for mode in spec.pooling:
        if mode == "cls":
            parts.append(hidden[:, 0])
        elif mode == "max":
            parts.append(hidden.masked_fill(weights == 0, -1e9).amax(1))
        elif mode == "mean":
            parts.append((hidden * weights).sum(1) / counts)
        else:  # mean_sqrt_len
            parts.append((hidden * weights).sum(1) / counts.sqrt())
    out = torch.cat(parts, dim=-1)
    return F.normalize(out, p=2, dim=-1) if spec.normalize else out


def embed(spec: HFSpec, params: TorchParams, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return pool(spec, bert_hidden(spec, params, ids, mask), mask)


def classify(
    spec: HFSpec, params: TorchParams, ids: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Class logits: BERT's pooler (tanh of a linear map of [CLS]) then the classifier."""
    hidden = bert_hidden(spec, params, ids, mask)
    pooled = torch.tanh(linear(params, f"{spec.prefix}pooler.dense", hidden[:, 0]))
    return linear(params, "classifier", pooled)


def gpt2_logits(spec: HFSpec, params: TorchParams, ids: torch.Tensor) -> torch.Tensor:
    """Next-token logits `(b, t, vocab)` of right-padded rows."""
    c, p = spec.config, spec.prefix
    time = ids.shape[1]
    if time > c.positions:
        raise ValueError(f"sequence length: expected at most {c.positions}, got {time}")
    x = F.embedding(ids, params[f"{p}wte.weight"]) + params[f"{p}wpe.weight"][:time]
    for i in range(c.layers):
        b = f"{p}h.{i}"
        qkv = linear(params, f"{b}.attn.c_attn", _layer_norm(params, f"{b}.ln_1", x, c.eps), True)
        q, k, v = (_heads(t, c.heads) for t in qkv.split(c.hidden, dim=-1))
        y = _merge(F.scaled_dot_product_attention(q, k, v, is_causal=True))
        x = x + linear(params, f"{b}.attn.c_proj", y, True)
        h = _act(
            c.act, linear(params, f"{b}.mlp.c_fc", _layer_norm(params, f"{b}.ln_2", x, c.eps), True)
        )
        x = x + linear(params, f"{b}.mlp.c_proj", h, True)
    x = _layer_norm(params, f"{p}ln_f", x, c.eps)
    return F.linear(x, params.get("lm_head.weight", params[f"{p}wte.weight"]))
