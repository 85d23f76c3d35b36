"""The one parameter layout both frameworks share: names, shapes and a seeded initialisation.

Weights follow torch's `nn.Linear` convention, `(out_features, in_features)`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .builtin import normalize_config

Params = dict[str, np.ndarray]

GPT_MLP_RATIO = 4
LAYER_NORM_EPS = 1e-5


def param_shapes(arch: str, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every parameter's name and shape, in a fixed order."""
    config = normalize_config(arch, config)
    if arch == "mlp":
        return _mlp_shapes(config)
    return _gpt_shapes(config)


def _mlp_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    widths = [config["in"], *config["hidden"], config["out"]]
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        shapes[f"layers.{i}.weight"] = (fan_out, fan_in)
        shapes[f"layers.{i}.bias"] = (fan_out,)
    return shapes


def _gpt_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    d, vocab = config["d_model"], config["vocab"]
    ffn = GPT_MLP_RATIO * d
    shapes: dict[str, tuple[int, ...]] = {
        "tok_emb.weight": (vocab, d),
        "pos_emb.weight": (config["context"], d),
    }
    for i in range(config["layers"]):
        b = f"blocks.{i}"
        shapes |= {
            f"{b}.ln1.weight": (d,),
            f"{b}.ln1.bias": (d,),
            f"{b}.attn.qkv.weight": (3 * d, d),
            f"{b}.attn.qkv.bias": (3 * d,),
            f"{b}.attn.proj.weight": (d, d),
            f"{b}.attn.proj.bias": (d,),
            f"{b}.ln2.weight": (d,),
            f"{b}.ln2.bias": (d,),
            f"{b}.mlp.fc.weight": (ffn, d),
            f"{b}.mlp.fc.bias": (ffn,),
            f"{b}.mlp.proj.weight": (d, ffn),
            f"{b}.mlp.proj.bias": (d,),
        }
    shapes |= {"ln_f.weight": (d,), "ln_f.bias": (d,), "head.weight": (vocab, d)}
    return shapes


def init_params(arch: str, config: dict[str, Any], seed: int) -> Params:
    """Deterministic float32 parameters for `arch` from a numpy Generator seeded with `seed`."""
    config = normalize_config(arch, config)
    rng = np.random.default_rng(seed)
    shapes = param_shapes(arch, config)
    params: Params = {}
    for name, shape in shapes.items():
        std = _init_std(arch, config, name, shape)
        if std is None:
            fill = 1.0 if name.endswith(".weight") else 0.0  # LayerNorm scale 1, every bias 0
            params[name] = np.full(shape, fill, dtype=np.float32)
        else:
            params[name] = (rng.standard_normal(shape, dtype=np.float32) * std).astype(np.float32)
    return params


def _init_std(arch: str, config: dict[str, Any], name: str, shape: tuple[int, ...]) -> float | None:
    """Standard deviation of a normal init, or None for constant (biases, LayerNorm)."""
    if len(shape) != 2:
        return None
    if arch == "mlp":
        return math.sqrt(2.0 / shape[1])  # He init keeps activations' scale through ReLU/GELU
    if name.endswith("proj.weight"):
        # GPT-2: residual projections shrink with depth so the residual stream does not grow.
        return 0.02 / math.sqrt(2 * config["layers"])
    return 0.02


def check_params(arch: str, config: dict[str, Any], params: dict[str, Any]) -> None:
    """Raise ValueError unless `params` has exactly the names and shapes of `arch`."""
    expected = param_shapes(arch, config)
    missing = [name for name in expected if name not in params]
    if missing:
        raise ValueError(f"params: missing {missing[0]!r} ({len(missing)} missing) for {arch}")
    unexpected = sorted(set(params) - set(expected))
    if unexpected:
        raise ValueError(f"params: unexpected {unexpected[0]!r} for {arch}")
    for name, shape in expected.items():
        got = tuple(params[name].shape)
        if got != shape:
            raise ValueError(f"params: {name!r} expected shape {shape}, got {got}")
