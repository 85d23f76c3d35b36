"""Hugging Face model directories: what is read from them, what is refused, and the way back."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from gswarm_kernels.hf.model_dir import HFModel, load_model_dir, save_model_dir
from gswarm_kernels.hf.spec import read_spec
from gswarm_kernels.hf.tokenizer import tokenizer_for

from .hf_models import tiny_gpt2_dir


def test_minilm_as_its_sentence_transformers_files_say(minilm_path):
    model = load_model_dir(minilm_path)
    spec = model.spec
    assert (spec.family, spec.model_type, spec.architecture, spec.prefix) == (
        "bert",
        "embedding",
        "BertModel",
        "",
    )
    assert spec.pooling == ("mean",) and spec.normalize  # 1_Pooling/config.json, modules.json
    assert spec.max_length == 256  # sentence_bert_config.json, not tokenizer.json's 128
    assert spec.config.hidden == 384 and spec.config.layers == 6 and spec.config.eps == 1e-12
    assert "embeddings.position_ids" not in model.params  # a buffer, not a weight
    assert model.params["encoder.layer.5.output.dense.weight"].shape == (384, 1536)
    tokenizer = tokenizer_for(spec, model.tokenizer_json)
    assert tokenizer.encode(["Hello world!"])[0].tolist() == [101, 7592, 2088, 999, 102]
    assert len(tokenizer.encode(["word " * 400])[0]) == 256  # truncated, [SEP] kept


def test_sharded_weights_with_their_index_load_as_one_file(gpt2_path, tmp_path):
    sharded = tiny_gpt2_dir(tmp_path / "sharded", shard=True)
    assert (
        len(list(sharded.glob("model-*.safetensors"))) > 1
        and (sharded / "model.safetensors.index.json").exists()
    )
    one, many = load_model_dir(gpt2_path), load_model_dir(sharded)
    assert one.spec == many.spec and one.params.keys() == many.params.keys()
    for name, value in one.params.items():
        np.testing.assert_array_equal(value, many.params[name])
    # GPT2LMHeadModel's names; its head is the token embedding, so no lm_head is stored
    assert "transformer.h.1.attn.c_attn.weight" in one.params and "lm_head.weight" not in one.params
    assert one.spec.config.eos_id == 0 and one.spec.model_type == "causal_lm"


def test_a_classifier_from_an_encoder_gains_the_prefix_and_a_seeded_head(minilm_path):
    a = load_model_dir(minilm_path, "classifier", num_labels=3, seed=1)
    b = load_model_dir(minilm_path, "classifier", num_labels=3, seed=1)
    c = load_model_dir(minilm_path, "classifier", num_labels=3, seed=2)
    assert a.spec.prefix == "bert." and a.spec.labels == ("LABEL_0", "LABEL_1", "LABEL_2")
    assert "bert.encoder.layer.0.attention.self.query.weight" in a.params
    assert a.params["classifier.weight"].shape == (3, 384)
    np.testing.assert_array_equal(a.params["classifier.weight"], b.params["classifier.weight"])
    assert not np.array_equal(a.params["classifier.weight"], c.params["classifier.weight"])
    np.testing.assert_array_equal(
        a.params["bert.pooler.dense.weight"],
        load_model_dir(minilm_path).params["pooler.dense.weight"],
    )


def test_a_transformers_classifier_keeps_its_head_and_labels(bert_classifier_path):
    model = load_model_dir(bert_classifier_path)
    assert model.spec.model_type == "classifier" and len(model.spec.labels) == 3
    assert model.spec.architecture == "BertForSequenceClassification"
    with pytest.raises(ValueError, match=r"'classifier\.(weight|bias)' expected shape \(2,"):
        load_model_dir(bert_classifier_path, num_labels=2)


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_pickled_weights_are_never_loaded(gpt2_path, tmp_path):
    root = _copy(gpt2_path, tmp_path / "pickled")
    (root / "model.safetensors").unlink()
    (root / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(ValueError, match="pickled weights are never loaded"):
        load_model_dir(root)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda c: c.update(model_type="t5", architectures=["T5Model"]),
            "expected a BERT or GPT-2",
        ),
        (
            lambda c: c.update(scale_attn_by_inverse_layer_idx=True),
            "scale_attn_by_inverse_layer_idx",
        ),
        (lambda c: c.update(activation_function="swish"), "activation_function: expected one of"),
        (lambda c: c.update(n_embd=48), r"expected shape \(\d+, 48\)"),
    ],
)
def test_configs_the_twins_cannot_compute_exactly_are_refused(gpt2_path, tmp_path, edit, message):
    root = _copy(gpt2_path, tmp_path / "edited")
    config = json.loads((root / "config.json").read_text())
    edit(config)
    (root / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=message):
        load_model_dir(root)


def test_model_type_must_suit_the_family(gpt2_path, minilm_path):
    with pytest.raises(ValueError, match="model_type: expected one of \\['causal_lm'\\]"):
        read_spec(gpt2_path, "embedding")
    with pytest.raises(
        ValueError, match="model_type: expected one of \\['embedding', 'classifier'\\]"
    ):
        read_spec(minilm_path, "causal_lm")


def test_sentence_modules_beyond_pooling_and_normalize_are_refused(bert_path, tmp_path):
    root = _copy(bert_path, tmp_path / "dense")
    modules = json.loads((root / "modules.json").read_text())
    modules.append(
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
    )
    (root / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(
        ValueError, match="modules.json: expected Transformer, Pooling and Normalize"
    ):
        read_spec(root)


def test_saved_directories_load_back_alike(bert_path, gpt2_path, minilm_path, tmp_path):
    for i, (path, model_type) in enumerate(
        [(bert_path, None), (gpt2_path, None), (minilm_path, "classifier")]
    ):
        model = load_model_dir(path, model_type, num_labels=2 if model_type else None)
        save_model_dir(model, tmp_path / str(i))
        again = load_model_dir(tmp_path / str(i))
        assert again.spec._replace(architecture="", hf_config="") == model.spec._replace(
            architecture="", hf_config=""
        )
        assert again.spec.architecture == model.spec.transformers_class
        assert (
            again.params.keys() == model.params.keys()
            and again.tokenizer_json == model.tokenizer_json
        )
        for name, value in model.params.items():
            np.testing.assert_array_equal(value, again.params[name])


def test_a_directory_without_a_tokenizer_serves_token_ids_only(gpt2_path, tmp_path):
    root = _copy(gpt2_path, tmp_path / "bare")
    (root / "tokenizer.json").unlink()
    model = load_model_dir(root)
    assert model.tokenizer_json is None and tokenizer_for(model.spec, None) is None
    assert isinstance(model, HFModel)
