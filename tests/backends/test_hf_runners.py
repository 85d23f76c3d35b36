"""Runners of Hugging Face model directories (embedding, classifier, causal_lm) in torch and JAX:
strings or token-id rows in, wrong input refused with what was expected, batches padded and masked;
and the cluster-facing operations: training, quantisation with its measured accuracy loss."""

from __future__ import annotations

import asyncio
import shutil

import numpy as np
import pytest

from gswarm_jupyter.backends import hf_ops
from gswarm_jupyter.backends.base import GenerateOptions
from gswarm_jupyter.backends.batcher import Batcher
from gswarm_jupyter.backends.registry import HF_ARCH, load_runner
from gswarm_jupyter.core.errors import InvalidInputData, InvalidRequest

FRAMEWORKS = ["torch", "jax"]
TEXTS = ["Hello world!", "Dynamic batching pads short rows and masks the padding.", "x"]
GREEDY = GenerateOptions(max_tokens=6, temperature=0)


def runner(framework, path, model_type=None, params=None, **config):
    return load_runner(
        framework,
        HF_ARCH,
        {"model_dir": str(path), "model_type": model_type, **config},
        params or {},
        "dram",
    )


def served(r, rows, options=None):
    options = options or GenerateOptions()
    return r.run(r.check(rows, options), options)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_an_embedding_model_answers_one_normalised_vector_per_string(minilm_path, framework):
    r = runner(framework, minilm_path)
    assert (r.framework, r.arch, r.model_type, r.generates) == (
        framework,
        HF_ARCH,
        "embedding",
        False,
    )
    out = np.asarray(served(r, TEXTS))
    assert out.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # token-id rows keep working, and answer as the strings they came from
    ids = [[101, 7592, 2088, 999, 102]]
    np.testing.assert_allclose(served(r, ids), out[:1], atol=1e-6)
    assert r.memory_bytes() > 80_000_000


def test_the_twin_runners_agree(minilm_path):
    a, b = (np.asarray(served(runner(fw, minilm_path), TEXTS)) for fw in FRAMEWORKS)
    assert np.abs(a - b).max() < 1e-4


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_classifier_answers_scores_per_row(bert_classifier_path, framework):
    r = runner(framework, bert_classifier_path)
    out = np.asarray(served(r, TEXTS))
    assert r.model_type == "classifier" and out.shape == (3, 3) and len(r.labels) == 3


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_causal_model_generates_ids_and_their_text(gpt2_path, framework):
    r = runner(framework, gpt2_path)
    rows = r.check(["the quick brown", "hello"], GREEDY)
    out = r.run(rows, GREEDY)
    assert r.generates and [len(g) for g in out] == [6, 6]
    assert r.decode(out) == r.tokenizer.decode(out) and all(
        isinstance(t, str) for t in r.decode(out)
    )
    assert r.run(r.check([rows[0].tolist()], GREEDY), GREEDY) == out[:1]  # ids alike


@pytest.mark.parametrize(
    ("model", "rows", "options", "details"),
    [
        (
            "minilm",
            [[0.5, 1.5]],
            GenerateOptions(),
            {"field": "input_data[0]", "expected": "integer token ids", "got": "dtype float64"},
        ),
        (
            "minilm",
            [],
            GenerateOptions(),
            {
                "field": "input_data",
                "expected": "a non-empty list of strings or of token-id rows",
                "got": "an empty list",
            },
        ),
        (
            "minilm",
            "one string",
            GenerateOptions(),
            {
                "field": "input_data",
                "expected": "a non-empty list of strings or of token-id rows",
                "got": "str",
            },
        ),
        (
            "minilm",
            ["text", [101, 102]],
            GenerateOptions(),
            {"field": "input_data", "expected": "all strings or all token-id rows", "got": "a mix"},
        ),
        (
            "minilm",
            [[101, 30522]],
            GenerateOptions(),
            {
                "field": "input_data[0]",
                "expected": "token ids must be in [0, 30522)",
                "got": "30522",
            },
        ),
        (
            "minilm",
            [[101] * 513],
            GenerateOptions(),
            {"field": "input_data[0]", "expected": "at most 512 tokens", "got": "513"},
        ),
        (
            "gpt2",
            [""],
            GREEDY,
            {"field": "input_data[0]", "expected": "a text that makes tokens", "got": "''"},
        ),
        (
            "gpt2",
            ["hi"],
            GenerateOptions(top_p=0),
            {"field": "top_p", "expected": "a number > 0", "got": "0"},
        ),
    ],
)
def test_wrong_input_for_the_model_type_says_what_was_expected(
    minilm_path, gpt2_path, model, rows, options, details
):
    r = runner("torch", minilm_path if model == "minilm" else gpt2_path)
    with pytest.raises(InvalidInputData) as caught:
        r.check(rows, options)
    assert caught.value.details == details | {"model_type": r.model_type}


def test_strings_to_a_model_without_a_tokenizer(gpt2_path, tmp_path):
    bare = shutil.copytree(gpt2_path, tmp_path / "bare")
    (bare / "tokenizer.json").unlink()
    r = runner("torch", bare)
    with pytest.raises(
        InvalidInputData, match="expected token-id rows .*no tokenizer.json.*got strings"
    ):
        r.check(["hello"], GREEDY)
    assert r.decode([[1, 2]]) is None and len(r.run(r.check([[1, 2]], GREEDY), GREEDY)[0]) == 6


def test_an_unreadable_directory_or_a_wrong_model_type_is_an_invalid_request(gpt2_path, tmp_path):
    with pytest.raises(InvalidRequest) as caught:
        runner("torch", tmp_path)
    assert caught.value.details["field"] == "model_dir" and "config.json" in caught.value.message
    with pytest.raises(InvalidRequest) as caught:
        runner("torch", gpt2_path, "embedding")
    assert caught.value.details == {"field": "model_type"}


def test_given_weights_replace_the_directorys(bert_classifier_path):
    base = hf_ops.read_model(bert_classifier_path)
    changed = {name: value * 0.5 for name, value in base.params.items()}
    a = served(runner("torch", bert_classifier_path), TEXTS)
    b = served(runner("torch", bert_classifier_path, params=changed), TEXTS)
    assert not np.allclose(a, b)
    with pytest.raises(InvalidRequest, match="unexpected 'bert.extra.weight'") as caught:
        runner("torch", bert_classifier_path, params={**changed, "extra.weight": np.zeros(1)})
    assert caught.value.details == {"field": "params"}


# -- batching -------------------------------------------------------------------------------------


async def _concurrent(batcher, requests, options=None):
    return await asyncio.gather(*(batcher.submit(r, options) for r in requests))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_texts_of_different_lengths_share_a_padded_batch_and_answer_as_alone(
    minilm_path, framework
):
    r = runner(framework, minilm_path)
    alone = [served(r, [text])[0] for text in TEXTS]
    batcher = Batcher(r, max_batch_size=8, batch_timeout_ms=200)
    answers = asyncio.run(_concurrent(batcher, [[text] for text in TEXTS]))
    assert batcher.stats()["batch_size_histogram"] == {"3": 1}  # one padded batch
    for answer, expected in zip(answers, alone, strict=True):
        np.testing.assert_allclose(answer.rows[0], expected, atol=1e-6)
        assert answer.texts is None and answer.tokens_generated == 0


def test_greedy_prompts_batch_together_and_come_back_with_their_text(gpt2_path):
    r = runner("torch", gpt2_path)
    prompts = ["the quick brown", "a", "every model is loaded from a"]
    alone = [served(r, [p], GREEDY)[0] for p in prompts]
    batcher = Batcher(r, max_batch_size=8, batch_timeout_ms=200)
    answers = asyncio.run(_concurrent(batcher, [[p] for p in prompts], GREEDY))
    assert batcher.stats()["batch_size_histogram"] == {"3": 1}
    assert [a.rows[0] for a in answers] == alone
    assert [a.texts for a in answers] == [r.decode([row]) for row in alone]
    assert sum(a.tokens_generated for a in answers) == sum(len(row) for row in alone)


# -- training and quantisation --------------------------------------------------------------------

TRAIN_TEXTS = ["good great fine", "bad awful poor", "great and good", "awful, bad"]
HYPER = dict(epochs=3, learning_rate=1e-3, batch_size=2, seed=0)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_training_a_classifier_lowers_the_loss_and_serves_the_new_weights(
    bert_classifier_path, framework
):
    model = hf_ops.read_model(bert_classifier_path)
    result = hf_ops.train_model(framework, model, TRAIN_TEXTS, [0, 1, 0, 1], **HYPER)
    assert result.loss_history[-1] < result.loss_history[0]
    assert result.params.keys() == model.params.keys()
    tuned = served(runner("torch", bert_classifier_path, params=result.params), TRAIN_TEXTS)
    assert not np.allclose(tuned, served(runner("torch", bert_classifier_path), TRAIN_TEXTS))


def test_training_errors_are_api_errors(bert_classifier_path, gpt2_path):
    model = hf_ops.read_model(bert_classifier_path)
    with pytest.raises(InvalidRequest) as caught:
        hf_ops.train_model(
            "torch", model, TRAIN_TEXTS, [0, 1, 0, 1], **HYPER | {"optimizer": "lion"}
        )
    assert caught.value.details == {"field": "optimizer"}
    with pytest.raises(InvalidInputData) as caught:
        hf_ops.train_model("torch", model, TRAIN_TEXTS, [0, 1], **HYPER)
    assert caught.value.details["field"] == "labels"
    gpt2 = hf_ops.read_model(gpt2_path)
    result = hf_ops.train_model(
        "jax", gpt2, TRAIN_TEXTS * 2, None, **HYPER | {"learning_rate": 3e-3}
    )
    assert result.loss_history[-1] < result.loss_history[0]


@pytest.mark.parametrize("precision", ["int8", "fp16", "bf16"])
def test_quantising_measures_the_accuracy_loss_on_the_calibration_data(minilm_path, precision):
    model = hf_ops.read_model(minilm_path)
    report = hf_ops.quantize_and_measure(model, precision, TEXTS)
    assert report.samples == 3 and report.optimized_bytes < 0.7 * report.original_bytes
    assert 0 < report.accuracy_loss < (0.2 if precision == "int8" else 0.01)
    served_q = served(runner("torch", minilm_path, params=report.params), TEXTS)
    original = served(runner("torch", minilm_path), TEXTS)
    error = np.linalg.norm(np.subtract(served_q, original)) / np.linalg.norm(original)
    assert error == pytest.approx(report.accuracy_loss, rel=1e-3)  # what a service of it answers


def test_quantising_a_causal_model_without_calibration_uses_seeded_rows(gpt2_path):
    model = hf_ops.read_model(gpt2_path)
    a = hf_ops.quantize_and_measure(model, "int8", framework="jax", seed=1)
    b = hf_ops.quantize_and_measure(model, "int8", framework="jax", seed=1)
    assert a.samples == hf_ops.CALIBRATION_SAMPLES and a.accuracy_loss == b.accuracy_loss > 0
    with pytest.raises(InvalidRequest) as caught:
        hf_ops.quantize_and_measure(model, "int4")
    assert caught.value.details == {"field": "target_precision"}
    with pytest.raises(InvalidInputData) as caught:
        hf_ops.quantize_and_measure(model, "int8", [[0.5]])
    assert caught.value.details["field"] == "calibration_data[0]"
