"""What a Hugging Face model directory says about the model, as one hashable `HFSpec`.

Only what the computation needs is kept, checked and normalised (`ModelConfig`); a config the
twins cannot compute exactly (another position embedding, scaled attention variants, an unknown
activation) is refused with a ValueError naming the field, never approximated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

MODEL_TYPES: tuple[str, ...] = ("embedding", "causal_lm", "classifier")
FAMILY_MODEL_TYPES: dict[str, tuple[str, ...]] = {
    "bert": ("embedding", "classifier"),
    "gpt2": ("causal_lm",),
}
# The transformers class whose tensor names a model of each type uses, and their prefix.
ARCHITECTURES: dict[str, tuple[str, str]] = {
    "embedding": ("BertModel", ""),
    "classifier": ("BertForSequenceClassification", "bert."),
    "causal_lm": ("GPT2LMHeadModel", "transformer."),
}
ACTIVATIONS: tuple[str, ...] = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")
# Pooling mode -> its key in 1_Pooling/config.json, in the order sentence-transformers concatenates.
_POOLING_KEYS: dict[str, str] = {
    "cls": "pooling_mode_cls_token",
    "max": "pooling_mode_max_tokens",
    "mean": "pooling_mode_mean_tokens",
    "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens",
}
POOLING_MODES: tuple[str, ...] = tuple(_POOLING_KEYS)
DEFAULT_NUM_LABELS = 2
_UNBOUNDED_LENGTH = 1_000_000  # tokenizer_config's "no limit" is a huge number


class ModelConfig(NamedTuple):
    """The numbers a forward pass needs, under one naming for both families."""

    vocab: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    act: str
    eps: float
    positions: int
    type_vocab: int  # BERT's token-type rows (0 for GPT-2)
    pad_id: int
    eos_id: int | None  # generation stops after it (GPT-2)
    tied: bool  # GPT-2's head is its token embedding
    init_std: float


class HFSpec(NamedTuple):
    """One model: family, what it answers, config, pooling and limits. Hashable (a JAX static)."""

    family: str  # "bert" | "gpt2"
    model_type: str  # "embedding" | "classifier" | "causal_lm"
    architecture: str  # config.json's architectures[0] as read
    prefix: str  # tensor-name prefix of the model type's transformers class
    config: ModelConfig
    pooling: tuple[str, ...]  # embedding: pooling modes, concatenated in this order
    normalize: bool  # embedding: L2-normalised output
    max_length: int  # encoders: tokens per row (truncation); decoders: the context window
    lowercase: bool  # sentence-transformers' do_lower_case
    labels: tuple[str, ...]  # classifier: class names, index order
    hf_config: str  # config.json as read (JSON), the base of a saved copy

    @property
    def transformers_class(self) -> str:
        return ARCHITECTURES[self.model_type][0]

    @property
    def generates(self) -> bool:
        return self.model_type == "causal_lm"


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`, or ValueError naming the file."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path.name}: not readable JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path.name}: expected a JSON object, got {type(value).__name__}")
    return value


def family_of(config: dict[str, Any]) -> str:
    """`bert` or `gpt2` from config.json's `model_type` (or `architectures`)."""
    kind = config.get("model_type")
    if kind in FAMILY_MODEL_TYPES:
        return str(kind)
    names = config.get("architectures") or []
    for name in names if isinstance(names, list) else []:
        if isinstance(name, str) and name.startswith("Bert"):
            return "bert"
        if isinstance(name, str) and name.startswith("GPT2"):
            return "gpt2"
    raise ValueError(
        f"architecture: expected a BERT or GPT-2 checkpoint (config.json model_type bert or gpt2), "
        f"got model_type {kind!r}, architectures {names!r}"
    )


def default_model_type(family: str, config: dict[str, Any]) -> str:
    """What a checkpoint answers when nobody says: classifiers say so in `architectures`."""
    if family == "gpt2":
        return "causal_lm"
    names = config.get("architectures") or []
    if any(isinstance(n, str) and n.endswith("ForSequenceClassification") for n in names):
        return "classifier"
    return "embedding"


class TextFiles:
    """A model directory's text files held in memory (relative name -> text), read through the
    part of `pathlib.Path` that `read_spec` uses, so a packed copy needs no folder on disk."""

    def __init__(self, files: Mapping[str, str], name: str = "") -> None:
        self._files = files
        self._name = name

    @property
    def name(self) -> str:
        return self._name.rsplit("/", 1)[-1]

    def __truediv__(self, part: str) -> TextFiles:
        joined = "/".join(p for p in (*self._name.split("/"), *str(part).split("/")) if p not in ("", "."))
        return TextFiles(self._files, joined)

    def __fspath__(self) -> str:
        return self._name or "."

    def is_file(self) -> bool:
        return self._name in self._files

    exists = is_file

    def read_text(self, encoding: str = "utf-8") -> str:
        try:
            return self._files[self._name]
        except KeyError:
            raise FileNotFoundError(self._name) from None


def read_spec(
    path: str | Path | TextFiles, model_type: str | None = None, num_labels: int | None = None
) -> HFSpec:
    """The spec of the model directory at `path` (config.json plus sentence-transformers files);
    `path` may be a `TextFiles`."""
    root = path if isinstance(path, TextFiles) else Path(path)
    config = read_json(root / "config.json")
    family = family_of(config)
    model_type = model_type or default_model_type(family, config)
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type: expected one of {list(MODEL_TYPES)}, got {model_type!r}")
    if model_type not in FAMILY_MODEL_TYPES[family]:
        raise ValueError(
            f"model_type: expected one of {list(FAMILY_MODEL_TYPES[family])} for a {family} "
            f"checkpoint, got {model_type!r}"
        )
    names = config.get("architectures") or [ARCHITECTURES[model_type][0]]
    model_config = _bert_config(config) if family == "bert" else _gpt2_config(config)
    pooling: tuple[str, ...] = ()
    normalize = lowercase = False
    labels: tuple[str, ...] = ()
    if family == "bert":
        max_length = _encoder_max_length(root, model_config.positions, model_type == "embedding")
        if model_type == "embedding":
            pooling, normalize = sentence_modules(root)
            lowercase = bool(
                _optional_json(root / "sentence_bert_config.json").get("do_lower_case")
            )
        else:
            labels = _labels(config, num_labels)
    else:
        max_length = model_config.positions
    return HFSpec(
        family=family,
        model_type=model_type,
        architecture=str(names[0]),
        prefix=ARCHITECTURES[model_type][1],
        config=model_config,
        pooling=pooling,
        normalize=normalize,
        max_length=max_length,
        lowercase=lowercase,
        labels=labels,
        hf_config=json.dumps(config, sort_keys=True),
    )


def sentence_modules(root: Path) -> tuple[tuple[str, ...], bool]:
    """(pooling modes, normalise) from `modules.json`; mean pooling without it, as
    sentence-transformers does for a plain transformers checkpoint."""
    modules_path = root / "modules.json"
    if not modules_path.exists():
        return ("mean",), False
    try:
        modules = json.loads(modules_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"modules.json: not readable JSON ({exc})") from None
    if not isinstance(modules, list):
        raise ValueError(f"modules.json: expected a list of modules, got {type(modules).__name__}")
    pooling: tuple[str, ...] = ("mean",)
    normalize = False
    for module in sorted(modules, key=lambda m: m.get("idx", 0) if isinstance(m, dict) else 0):
        kind = str(module.get("type", "")) if isinstance(module, dict) else ""
        short = kind.rsplit(".", 1)[-1]
        if short == "Transformer":
            continue
        if short == "Pooling":
            pooling = _pooling_modes(root / str(module.get("path", "")) / "config.json")
        elif short == "Normalize":
            normalize = True
        else:
            raise ValueError(
                f"modules.json: expected Transformer, Pooling and Normalize modules, got {kind!r}"
            )
    return pooling, normalize


def _pooling_modes(path: Path) -> tuple[str, ...]:
    config = read_json(path)
    unsupported = [
        key
        for key in ("pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")
        if config.get(key)
    ]
    if unsupported or config.get("include_prompt") is False:
        raise ValueError(
            f"1_Pooling/config.json: expected cls, max, mean or mean_sqrt_len pooling, "
            f"got {unsupported or ['include_prompt: false']}"
        )
    modes = tuple(mode for mode, key in _POOLING_KEYS.items() if config.get(key))
    if not modes:
        raise ValueError("1_Pooling/config.json: expected at least one pooling mode, got none")
    return modes


def _encoder_max_length(root: Path, positions: int, sentence: bool) -> int:
    """Tokens per row: sentence-transformers' max_seq_length for a sentence encoder, else the
    tokenizer's model_max_length; never beyond the position table."""
    st_config = _optional_json(root / "sentence_bert_config.json") if sentence else {}
    length = st_config.get("max_seq_length")
    if length is None:
        length = _optional_json(root / "tokenizer_config.json").get("model_max_length")
        if not isinstance(length, int) or length >= _UNBOUNDED_LENGTH:
            length = positions
    if not isinstance(length, int) or length < 2:
        raise ValueError(f"max_seq_length: expected an integer >= 2, got {length!r}")
    return min(length, positions)


def _labels(config: dict[str, Any], num_labels: int | None) -> tuple[str, ...]:
    id2label = config.get("id2label") or {}
    named = [str(id2label[k]) for k in sorted(id2label, key=int)] if id2label else []
    if num_labels is None:
        return tuple(named) if named else tuple(f"LABEL_{i}" for i in range(DEFAULT_NUM_LABELS))
    if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
        raise ValueError(f"num_labels: expected an integer >= 1, got {num_labels!r}")
    if len(named) == num_labels:
        return tuple(named)
    return tuple(f"LABEL_{i}" for i in range(num_labels))


def _optional_json(path: Path) -> dict[str, Any]:
    return read_json(path) if path.exists() else {}


def _int(config: dict[str, Any], key: str, default: Any = None, minimum: int = 1) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key}: expected an integer >= {minimum} in config.json, got {value!r}")
    return value


def _float(config: dict[str, Any], key: str, default: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{key}: expected a number >= 0 in config.json, got {value!r}")
    return float(value)


def _activation(config: dict[str, Any], key: str, default: str) -> str:
    act = config.get(key, default)
    if act not in ACTIVATIONS:
        raise ValueError(f"{key}: expected one of {list(ACTIVATIONS)}, got {act!r}")
    return "gelu_new" if act == "gelu_pytorch_tanh" else str(act)


def _bert_config(config: dict[str, Any]) -> ModelConfig:
    kind = config.get("position_embedding_type", "absolute")
    if kind != "absolute":
        raise ValueError(f"position_embedding_type: expected 'absolute', got {kind!r}")
    hidden, heads = _int(config, "hidden_size"), _int(config, "num_attention_heads")
    if hidden % heads:
        raise ValueError(
            f"num_attention_heads: expected a divisor of hidden_size={hidden}, got {heads}"
        )
    return ModelConfig(
        vocab=_int(config, "vocab_size"),
        hidden=hidden,
        layers=_int(config, "num_hidden_layers"),
        heads=heads,
        ffn=_int(config, "intermediate_size"),
        act=_activation(config, "hidden_act", "gelu"),
        eps=_float(config, "layer_norm_eps", 1e-12),
        positions=_int(config, "max_position_embeddings", 512),
        type_vocab=_int(config, "type_vocab_size", 2),
        pad_id=_int(config, "pad_token_id", 0, minimum=0),
        eos_id=None,
        tied=False,
        init_std=_float(config, "initializer_range", 0.02),
    )


def _gpt2_config(config: dict[str, Any]) -> ModelConfig:
    for key, expected in (
        ("scale_attn_weights", True),
        ("scale_attn_by_inverse_layer_idx", False),
        ("add_cross_attention", False),
    ):
        if config.get(key, expected) != expected:
            raise ValueError(f"{key}: expected {expected}, got {config[key]!r}")
    hidden, heads = _int(config, "n_embd"), _int(config, "n_head")
    if hidden % heads:
        raise ValueError(f"n_head: expected a divisor of n_embd={hidden}, got {heads}")
    eos = config.get("eos_token_id")
    vocab = _int(config, "vocab_size")
    return ModelConfig(
        vocab=vocab,
        hidden=hidden,
        layers=_int(config, "n_layer"),
        heads=heads,
        ffn=_int(config, "n_inner", 4 * hidden) if config.get("n_inner") else 4 * hidden,
        act=_activation(config, "activation_function", "gelu_new"),
        eps=_float(config, "layer_norm_epsilon", 1e-5),
        positions=_int(config, "n_positions", 1024),
        type_vocab=0,
        pad_id=0,  # right padding behind a causal mask: any id will do
        eos_id=eos if isinstance(eos, int) and 0 <= eos < vocab else None,
        tied=bool(config.get("tie_word_embeddings", True)),
        init_std=_float(config, "initializer_range", 0.02),
    )
