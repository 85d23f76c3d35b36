"""Both twins against the reference libraries on the same inputs: sentence-transformers for
sentence embeddings, transformers for classifier logits and GPT-2 logits and greedy generation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gswarm_kernels.hf.inputs import model_rows, pad_batch
from gswarm_kernels.hf.jax_model import JaxModel
from gswarm_kernels.hf.model_dir import load_model_dir
from gswarm_kernels.hf.tokenizer import tokenizer_for
from gswarm_kernels.hf.torch_model import TorchModel

TWINS = [TorchModel, JaxModel]
TEXTS = [
    "Hello world!",
    "A swarm of GPUs answers a notebook, one batch at a time.",
    "x",
    "The quick brown fox jumps over the lazy dog. " * 40,  # past max_seq_length: truncated
]
PROMPTS = ["the quick brown", "hello world, tokens go", "a", "every model is loaded from a"]


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def answer(twin, model, texts):
    rows = model_rows(model.spec, tokenizer_for(model.spec, model.tokenizer_json), texts)
    ids, mask = pad_batch(rows, pad_id=model.spec.config.pad_id)
    return twin(model.spec, model.params).forward(ids, mask), ids, mask


def sentence_transformers_reference(path, texts):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu").encode(texts, convert_to_numpy=True)


@pytest.fixture(scope="module")
def minilm_reference(minilm_path):
    return sentence_transformers_reference(minilm_path, TEXTS)


@pytest.mark.parametrize("twin", TWINS)
def test_minilm_embeddings_are_sentence_transformers_embeddings(
    minilm_path, minilm_reference, twin
):
    ours, _, _ = answer(twin, load_model_dir(minilm_path), TEXTS)
    assert ours.shape == minilm_reference.shape == (len(TEXTS), 384)
    assert cosine(ours, minilm_reference).min() > 0.9999
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)  # 2_Normalize
    np.testing.assert_allclose(ours, minilm_reference, atol=1e-5)


@pytest.mark.parametrize("twin", TWINS)
def test_other_pooling_modes_and_lengths_follow_the_sentence_transformers_config(bert_path, twin):
    reference = sentence_transformers_reference(bert_path, TEXTS)
    ours, ids, _ = answer(twin, load_model_dir(bert_path), TEXTS)
    assert ids.shape[1] == 8  # max_seq_length 8, special tokens included
    assert ours.shape == reference.shape == (len(TEXTS), 64)  # max and mean, concatenated
    assert cosine(ours, reference).min() > 0.9999
    assert not np.allclose(np.linalg.norm(ours, axis=1), 1.0)  # no Normalize module


@pytest.mark.parametrize("twin", TWINS)
def test_classifier_logits_are_transformers_logits(bert_classifier_path, twin):
    from transformers import BertForSequenceClassification

    ours, ids, mask = answer(twin, load_model_dir(bert_classifier_path), TEXTS[:3])
    reference_model = BertForSequenceClassification.from_pretrained(bert_classifier_path).eval()
    with torch.no_grad():
        reference = reference_model(
            input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
        ).logits.numpy()
    assert ours.shape == (3, 3)
    np.testing.assert_allclose(ours, reference, atol=1e-5)


@pytest.fixture(scope="module")
def gpt2_reference(gpt2_path):
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(gpt2_path).eval()


@pytest.mark.parametrize("twin", TWINS)
def test_gpt2_logits_are_transformers_logits(gpt2_path, gpt2_reference, twin):
    ours, ids, mask = answer(twin, load_model_dir(gpt2_path), PROMPTS)
    with torch.no_grad():
        reference = gpt2_reference(torch.from_numpy(ids)).logits.numpy()
    real = mask.astype(bool)  # right padding: only the real positions are compared
    np.testing.assert_allclose(ours[real], reference[real], atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("twin", TWINS)
def test_gpt2_greedy_tokens_are_transformers_tokens(gpt2_path, gpt2_reference, twin):
    model = load_model_dir(gpt2_path)
    rows = model_rows(model.spec, tokenizer_for(model.spec, model.tokenizer_json), PROMPTS)
    ours = twin(model.spec, model.params).generate(rows, max_tokens=12, temperature=0)
    for row, generated in zip(rows, ours, strict=True):
        out = gpt2_reference.generate(
            torch.from_numpy(row)[None], max_new_tokens=12, do_sample=False, pad_token_id=0
        )[0, len(row) :].tolist()
        if 0 in out:  # transformers pads after end-of-text; ours stops there
            out = out[: out.index(0) + 1]
        assert generated == out
