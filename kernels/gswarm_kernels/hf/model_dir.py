"""Hugging Face model directories in and out: `config.json`, safetensors weights (one file or
shards with `model.safetensors.index.json`), `tokenizer.json`, sentence-transformers' files.

Only safetensors are read (never a pickle). Tensors are renamed to the names of the model type's
transformers class (a `BertModel` checkpoint served as a classifier gains the `bert.` prefix),
buffers are dropped, a missing classification head is made from a seed, and every name and shape
is checked before anything computes. Stored dtypes are kept (int8 with its `.qscale` too).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
import safetensors
import safetensors.numpy

from ..quantization import SCALE_SUFFIX, params_precision
from .layout import head_names, init_head, linear_layers, optional_names, param_shapes
from .spec import HFSpec, TextFiles, read_json, read_spec

Params = dict[str, np.ndarray]

WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
TOKENIZER = "tokenizer.json"
_PICKLES = (
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "tf_model.h5",
    "flax_model.msgpack",
)
_FAMILY_PREFIX = {"bert": "bert.", "gpt2": "transformer."}


class HFModel(NamedTuple):
    spec: HFSpec
    params: Params
    tokenizer_json: str | None  # None: token-id rows only


def load_model_dir(
    path: str | os.PathLike[str],
    model_type: str | None = None,
    *,
    num_labels: int | None = None,
    seed: int = 0,
) -> HFModel:
    """The model in the directory at `path`, served as `model_type` (read from config.json when
    None). A classifier made from an encoder gets a head of `num_labels` classes from `seed`."""
    root = Path(path)
    if not (root / "config.json").is_file():
        raise ValueError(f"model directory: expected config.json in {os.fspath(root)!r}, got none")
    spec = read_spec(root, model_type, num_labels)
    params = checked_params(spec, read_tensors(root), seed)
    tokenizer = root / TOKENIZER
    return HFModel(
        spec, params, tokenizer.read_text(encoding="utf-8") if tokenizer.is_file() else None
    )


def load_model_files(
    files: Mapping[str, str],
    tensors: Params,
    model_type: str | None = None,
    *,
    num_labels: int | None = None,
    seed: int = 0,
) -> HFModel:
    """The model whose text files (relative name -> text: config.json, tokenizer.json, ...) and
    tensors (as stored, any shard) are given, served as `model_type` (as `load_model_dir`)."""
    if "config.json" not in files:
        raise ValueError("model directory: expected config.json, got none")
    spec = read_spec(TextFiles(files), model_type, num_labels)
    return HFModel(spec, checked_params(spec, dict(tensors), seed), files.get(TOKENIZER))


def read_tensors(root: Path) -> Params:
    """Every tensor of the directory's safetensors weights (sharded or not), as stored."""
    if (root / WEIGHTS).is_file():
        files = [root / WEIGHTS]
    elif (root / INDEX).is_file():
        files = _shards(root)
    else:
        pickles = [name for name in _PICKLES if (root / name).exists()]
        got = f"only {pickles[0]} (pickled weights are never loaded)" if pickles else "none"
        raise ValueError(f"weights: expected {WEIGHTS} or {INDEX}, got {got}")
    tensors: Params = {}
    for file in files:
        with safetensors.safe_open(os.fspath(file), framework="numpy") as f:
            for name in f.keys():
                tensors[name] = f.get_tensor(name)
    return tensors


def _shards(root: Path) -> list[Path]:
    weight_map = read_json(root / INDEX).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ValueError(f"{INDEX}: expected a non-empty weight_map, got {weight_map!r}")
    files = []
    for name in dict.fromkeys(weight_map.values()):
        if (
            not isinstance(name, str)
            or Path(name).name != name
            or not name.endswith(".safetensors")
        ):
            raise ValueError(f"{INDEX}: expected shard file names in the directory, got {name!r}")
        if not (root / name).is_file():
            raise ValueError(f"{INDEX}: shard {name!r} is missing")
        files.append(root / name)
    return files


def checked_params(spec: HFSpec, tensors: Params, seed: int = 0) -> Params:
    """`tensors` renamed for the spec's model type, buffers dropped, a missing head made from
    `seed`; ValueError on a missing, unexpected or misshapen tensor."""
    params = _renamed(spec, tensors)
    shapes = param_shapes(spec)
    linear = linear_layers(spec)
    for name in sorted(params):
        if name.endswith(SCALE_SUFFIX):
            base = name[: -len(SCALE_SUFFIX)]
            if base not in linear or params.get(base, params[name]).dtype != np.int8:
                raise ValueError(f"params: unexpected {name!r} (a scale of no int8 linear weight)")
        elif name not in shapes:
            raise ValueError(f"params: unexpected {name!r} for a {spec.family} {spec.model_type}")
    for name, shape in shapes.items():  # in layout order, so the first mismatch is the telling one
        value = params.get(name)
        if value is None:
            continue
        if tuple(value.shape) != shape:
            raise ValueError(f"params: {name!r} expected shape {shape}, got {tuple(value.shape)}")
        if value.dtype == np.int8 and name + SCALE_SUFFIX not in params:
            raise ValueError(f"params: int8 tensor {name!r} has no {name + SCALE_SUFFIX!r}")
    missing = [n for n in shapes if n not in params and n not in optional_names(spec)]
    heads = set(missing) & head_names(spec)
    if heads:
        params |= init_head(spec, heads, seed)
        missing = [n for n in missing if n not in heads]
    if missing:
        raise ValueError(
            f"params: missing {missing[0]!r} ({len(missing)} missing) for a {spec.family} "
            f"{spec.model_type}"
        )
    return params


def _renamed(spec: HFSpec, tensors: Params) -> Params:
    strip = _FAMILY_PREFIX[spec.family]
    out: Params = {}
    for name, value in tensors.items():
        base = name[len(strip) :] if name.startswith(strip) else name
        if _dropped(spec, base):
            continue
        top = base.split(".", 1)[0]
        out[base if top in ("classifier", "lm_head") else spec.prefix + base] = value
    return out


def _dropped(spec: HFSpec, base: str) -> bool:
    """Buffers and heads the model type does not use."""
    if spec.family == "bert":
        return (
            base.endswith("position_ids")
            or base.startswith("cls.")  # a masked-LM head
            or (base.startswith("classifier.") and spec.model_type != "classifier")
        )
    return base.endswith((".attn.bias", ".attn.masked_bias")) or (
        base.startswith("lm_head.") and spec.config.tied
    )


def save_model_dir(model: HFModel, path: str | os.PathLike[str]) -> None:
    """Write `model` as a Hugging Face directory that `load_model_dir` and transformers (float
    precisions) read back: config, weights, tokenizer, sentence-transformers files."""
    spec, params = model.spec, model.params
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    config = json.loads(spec.hf_config)
    config["architectures"] = [spec.transformers_class]
    if spec.model_type == "classifier":
        config["id2label"] = {str(i): label for i, label in enumerate(spec.labels)}
        config["label2id"] = {label: i for i, label in enumerate(spec.labels)}
    _write_json(root / "config.json", config)
    tensors = {name: np.ascontiguousarray(value) for name, value in params.items()}
    metadata = {"format": "pt", "precision": params_precision(params)}
    safetensors.numpy.save_file(tensors, os.fspath(root / WEIGHTS), metadata=metadata)
    if model.tokenizer_json is not None:
        (root / TOKENIZER).write_text(model.tokenizer_json, encoding="utf-8")
    if spec.model_type == "embedding":
        _write_sentence_files(spec, root)


def _write_sentence_files(spec: HFSpec, root: Path) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    if spec.normalize:
        modules.append(
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            }
        )
    _write_json(root / "modules.json", modules)
    (root / "1_Pooling").mkdir(exist_ok=True)
    pooling = {
        "word_embedding_dimension": spec.config.hidden,
        "pooling_mode_cls_token": "cls" in spec.pooling,
        "pooling_mode_mean_tokens": "mean" in spec.pooling,
        "pooling_mode_max_tokens": "max" in spec.pooling,
        "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len" in spec.pooling,
    }
    _write_json(root / "1_Pooling" / "config.json", pooling)
    _write_json(
        root / "sentence_bert_config.json",
        {"max_seq_length": spec.max_length, "do_lower_case": spec.lowercase},
    )


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")
