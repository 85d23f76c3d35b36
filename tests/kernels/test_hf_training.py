"""Training Hugging Face models in both frameworks: a classification head on an encoder (class
labels, cross-entropy) and a causal model on text (next-token loss)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gswarm_kernels.hf import train_jax, train_torch
from gswarm_kernels.hf.inputs import model_rows, pad_batch
from gswarm_kernels.hf.model_dir import HFModel, load_model_dir, save_model_dir
from gswarm_kernels.hf.quantize import quantize_model
from gswarm_kernels.hf.tokenizer import tokenizer_for
from gswarm_kernels.hf.torch_model import TorchModel

from .hf_models import CORPUS

TEXTS = [
    "good great fine",
    "bad awful poor",
    "great and good",
    "awful, bad",
    "fine good",
    "poor bad",
]
LABELS = [0, 1, 0, 1, 0, 1]
COMMON = dict(epochs=4, learning_rate=1e-3, batch_size=4, seed=0)


@pytest.fixture(scope="module")
def classifier(bert_path):
    return load_model_dir(bert_path, "classifier", num_labels=2, seed=1)


def _tokenizer(model):
    return tokenizer_for(model.spec, model.tokenizer_json)


def test_classifier_twins_lower_the_loss_alike_and_keep_the_names(classifier, tmp_path):
    tok = _tokenizer(classifier)
    a = train_torch.train(
        classifier.spec, classifier.params, TEXTS, LABELS, tokenizer=tok, **COMMON
    )
    b = train_jax.train(classifier.spec, classifier.params, TEXTS, LABELS, tokenizer=tok, **COMMON)
    assert a.loss_history[-1] < 0.6 * a.loss_history[0] and a.steps == 8
    np.testing.assert_allclose(a.loss_history, b.loss_history, rtol=1e-4)
    assert a.params.keys() == b.params.keys() == classifier.params.keys()
    assert all(a.params[n].shape == v.shape for n, v in classifier.params.items())
    # the trained tensors load into transformers' own classifier and answer as ours
    from transformers import BertForSequenceClassification

    save_model_dir(
        HFModel(classifier.spec, a.params, classifier.tokenizer_json), tmp_path / "tuned"
    )
    reference = BertForSequenceClassification.from_pretrained(tmp_path / "tuned").eval()
    ids, mask = pad_batch(model_rows(classifier.spec, tok, TEXTS))
    ours = TorchModel(classifier.spec, a.params).forward(ids, mask)
    with torch.no_grad():
        theirs = reference(
            input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
        ).logits
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-5)
    assert (ours.argmax(1) == LABELS).all()


def test_causal_twins_lower_the_next_token_loss_on_text(gpt2_path):
    model = load_model_dir(gpt2_path)
    tok = _tokenizer(model)
    common = COMMON | {"learning_rate": 3e-3}
    a = train_torch.train(model.spec, model.params, CORPUS, None, tokenizer=tok, **common)
    b = train_jax.train(model.spec, model.params, CORPUS, None, tokenizer=tok, **common)
    assert a.loss_history[-1] < 0.8 * a.loss_history[0]
    np.testing.assert_allclose(a.loss_history, b.loss_history, rtol=1e-4)
    assert a.params.keys() == model.params.keys()  # tied head: still no lm_head.weight


def test_training_starts_from_quantised_weights_widened(classifier):
    int8 = quantize_model(classifier.spec, classifier.params, "int8")
    result = train_torch.train(
        classifier.spec,
        int8,
        TEXTS,
        LABELS,
        tokenizer=_tokenizer(classifier),
        **COMMON | {"epochs": 1},
    )
    assert result.params.keys() == classifier.params.keys()
    assert all(v.dtype == np.float32 for v in result.params.values())


@pytest.mark.parametrize(
    ("model_type", "inputs", "labels", "message"),
    [
        ("embedding", TEXTS, LABELS, "model_type: expected classifier or causal_lm"),
        ("classifier", TEXTS, LABELS[:3], "labels: expected 6 entries"),
        ("classifier", TEXTS, [0, 1, 2, 0, 1, 0], r"labels: class indices must be in \[0, 2\)"),
        ("classifier", TEXTS, None, "labels: required for a classifier"),
        ("classifier", [[1.5, 2.0]], [0], "training_data\\[0\\]: expected integer token ids"),
    ],
)
def test_training_data_that_does_not_fit_is_refused(bert_path, model_type, inputs, labels, message):
    model = load_model_dir(
        bert_path, model_type, num_labels=2 if model_type == "classifier" else None
    )
    with pytest.raises(ValueError, match=message):
        train_torch.train(
            model.spec, model.params, inputs, labels, tokenizer=_tokenizer(model), **COMMON
        )


def test_causal_rows_longer_than_the_context_are_refused(gpt2_path):
    model = load_model_dir(gpt2_path)
    with pytest.raises(ValueError, match=r"training_data\[0\]: expected 2 to 33 tokens"):
        train_jax.train(model.spec, model.params, [list(range(40))], None, **COMMON)
