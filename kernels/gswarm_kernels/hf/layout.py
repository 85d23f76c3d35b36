"""The tensors a spec's model holds: names (as `transformers` names them for the model type),
shapes, which are linear layers and in which layout, and seeded values for a missing head.

Linear weights are `(out, in)` in BERT (`nn.Linear`) and `(in, out)` in GPT-2 (`Conv1D`); both
are kept as the checkpoint stores them.
"""

from __future__ import annotations

import numpy as np

from .spec import HFSpec

Shapes = dict[str, tuple[int, ...]]


def param_shapes(spec: HFSpec) -> Shapes:
    """Every tensor the model needs, name -> shape, in a fixed order (optional ones included)."""
    return _bert_shapes(spec) if spec.family == "bert" else _gpt2_shapes(spec)


def optional_names(spec: HFSpec) -> frozenset[str]:
    """Tensors a checkpoint may lack: an embedding model computes without BERT's pooler."""
    if spec.family == "bert" and spec.model_type == "embedding":
        return frozenset({"pooler.dense.weight", "pooler.dense.bias"})
    return frozenset()


def head_names(spec: HFSpec) -> frozenset[str]:
    """Tensors made from a seed when the checkpoint has none (a new classification head)."""
    if spec.model_type == "classifier":
        return frozenset(
            {
                "bert.pooler.dense.weight",
                "bert.pooler.dense.bias",
                "classifier.weight",
                "classifier.bias",
            }
        )
    return frozenset()


def linear_layers(spec: HFSpec) -> dict[str, bool]:
    """Weight name of every linear layer -> True where it is stored `(in, out)` (GPT-2's Conv1D)."""
    shapes = param_shapes(spec)
    if spec.family == "gpt2":
        return {
            n: True for n in shapes if n.endswith(".weight") and (".attn.c_" in n or ".mlp.c_" in n)
        }
    return {
        n: False
        for n, shape in shapes.items()
        if n.endswith(".weight") and len(shape) == 2 and "embeddings" not in n
    }


def init_head(spec: HFSpec, names: set[str], seed: int) -> dict[str, np.ndarray]:
    """Seeded values for the head tensors in `names`: normal(0, initializer_range) weights and zero
    biases, as transformers initialises them."""
    rng = np.random.default_rng(seed)
    shapes = param_shapes(spec)
    out: dict[str, np.ndarray] = {}
    for name in sorted(names):
        shape = shapes[name]
        if name.endswith(".bias"):
            out[name] = np.zeros(shape, dtype=np.float32)
        else:
            out[name] = (
                rng.standard_normal(shape, dtype=np.float32) * spec.config.init_std
            ).astype(np.float32)
    return out


def _bert_shapes(spec: HFSpec) -> Shapes:
    c, p = spec.config, spec.prefix
    h = c.hidden
    shapes: Shapes = {
        f"{p}embeddings.word_embeddings.weight": (c.vocab, h),
        f"{p}embeddings.position_embeddings.weight": (c.positions, h),
        f"{p}embeddings.token_type_embeddings.weight": (c.type_vocab, h),
        f"{p}embeddings.LayerNorm.weight": (h,),
        f"{p}embeddings.LayerNorm.bias": (h,),
    }
    for i in range(c.layers):
        b = f"{p}encoder.layer.{i}"
        for part in ("query", "key", "value"):
            shapes[f"{b}.attention.self.{part}.weight"] = (h, h)
            shapes[f"{b}.attention.self.{part}.bias"] = (h,)
        shapes |= {
            f"{b}.attention.output.dense.weight": (h, h),
            f"{b}.attention.output.dense.bias": (h,),
            f"{b}.attention.output.LayerNorm.weight": (h,),
            f"{b}.attention.output.LayerNorm.bias": (h,),
            f"{b}.intermediate.dense.weight": (c.ffn, h),
            f"{b}.intermediate.dense.bias": (c.ffn,),
            f"{b}.output.dense.weight": (h, c.ffn),
            f"{b}.output.dense.bias": (h,),
            f"{b}.output.LayerNorm.weight": (h,),
            f"{b}.output.LayerNorm.bias": (h,),
        }
    shapes |= {f"{p}pooler.dense.weight": (h, h), f"{p}pooler.dense.bias": (h,)}
    if spec.model_type == "classifier":
        shapes |= {
            "classifier.weight": (len(spec.labels), h),
            "classifier.bias": (len(spec.labels),),
        }
    return shapes


def _gpt2_shapes(spec: HFSpec) -> Shapes:
    c, p = spec.config, spec.prefix
    h = c.hidden
    shapes: Shapes = {f"{p}wte.weight": (c.vocab, h), f"{p}wpe.weight": (c.positions, h)}
    for i in range(c.layers):
        b = f"{p}h.{i}"
        shapes |= {
            f"{b}.ln_1.weight": (h,),
            f"{b}.ln_1.bias": (h,),
            f"{b}.attn.c_attn.weight": (h, 3 * h),
            f"{b}.attn.c_attn.bias": (3 * h,),
            f"{b}.attn.c_proj.weight": (h, h),
            f"{b}.attn.c_proj.bias": (h,),
            f"{b}.ln_2.weight": (h,),
            f"{b}.ln_2.bias": (h,),
            f"{b}.mlp.c_fc.weight": (h, c.ffn),
            f"{b}.mlp.c_fc.bias": (c.ffn,),
            f"{b}.mlp.c_proj.weight": (c.ffn, h),
            f"{b}.mlp.c_proj.bias": (h,),
        }
    shapes |= {f"{p}ln_f.weight": (h,), f"{p}ln_f.bias": (h,)}
    if not spec.config.tied:
        shapes["lm_head.weight"] = (c.vocab, h)
    return shapes
