"""The torch and JAX twins of the Hugging Face architectures agree on real weights, and a row
answers the same alone as in a padded batch."""

from __future__ import annotations

import numpy as np
import pytest
from gswarm_kernels.hf.inputs import model_rows, pad_batch
from gswarm_kernels.hf.jax_model import JaxModel
from gswarm_kernels.hf.model_dir import load_model_dir
from gswarm_kernels.hf.tokenizer import tokenizer_for
from gswarm_kernels.hf.torch_model import TorchModel

TWINS = [TorchModel, JaxModel]
TEXTS = [
    "Hello world!",
    "Dynamic batching pads short rows and masks the padding away.",
    "x",
    "Twins check each other.",
]
PROMPTS = ["the quick brown", "hello world, tokens go", "a", "every model is loaded from a"]


@pytest.fixture(scope="module")
def minilm(minilm_path):
    return load_model_dir(minilm_path)


@pytest.fixture(scope="module")
def gpt2(gpt2_path):
    return load_model_dir(gpt2_path)


def rows_of(model, texts):
    return model_rows(model.spec, tokenizer_for(model.spec, model.tokenizer_json), texts)


def test_minilm_twins_agree_on_real_weights(minilm):
    ids, mask = pad_batch(rows_of(minilm, TEXTS))
    a = TorchModel(minilm.spec, minilm.params).forward(ids, mask)
    b = JaxModel(minilm.spec, minilm.params).forward(ids, mask)
    assert np.abs(a - b).max() < 1e-4


def test_minilm_classifier_twins_agree(minilm_path):
    model = load_model_dir(minilm_path, "classifier", num_labels=4, seed=3)
    ids, mask = pad_batch(rows_of(model, TEXTS))
    a = TorchModel(model.spec, model.params).forward(ids, mask)
    b = JaxModel(model.spec, model.params).forward(ids, mask)
    assert a.shape == (4, 4) and np.abs(a - b).max() < 1e-4


def test_gpt2_twins_agree_on_logits_and_greedy_tokens_past_the_context(gpt2):
    rows = rows_of(gpt2, PROMPTS)
    ids, mask = pad_batch(rows)
    a = TorchModel(gpt2.spec, gpt2.params)
    b = JaxModel(gpt2.spec, gpt2.params)
    real = mask.astype(bool)
    assert np.abs(a.forward(ids, mask)[real] - b.forward(ids, mask)[real]).max() < 1e-4
    # 40 new tokens slide past the 32-position window
    greedy = a.generate(rows, max_tokens=40, temperature=0)
    assert greedy == b.generate(rows, max_tokens=40, temperature=0)
    assert all(len(g) == 40 or g[-1] == gpt2.spec.config.eos_id for g in greedy)
    assert (
        max(len(r) + len(g) for r, g in zip(rows, greedy, strict=True)) > gpt2.spec.config.positions
    )


@pytest.mark.parametrize("twin", TWINS)
def test_a_row_answers_alone_as_in_a_padded_batch(minilm, twin):
    model = twin(minilm.spec, minilm.params)
    rows = rows_of(minilm, TEXTS)
    batch = model.forward(*pad_batch(rows))
    for i, row in enumerate(rows):
        alone = model.forward(*pad_batch([row]))
        np.testing.assert_allclose(batch[i], alone[0], atol=1e-6)


@pytest.mark.parametrize("twin", TWINS)
def test_a_prompt_generates_alone_as_in_a_batch(gpt2, twin):
    model = twin(gpt2.spec, gpt2.params)
    rows = rows_of(gpt2, PROMPTS)
    batch = model.generate(rows, max_tokens=10, temperature=0)
    assert batch == [model.generate([row], max_tokens=10, temperature=0)[0] for row in rows]


@pytest.mark.parametrize("twin", TWINS)
def test_sampling_is_seeded_and_a_tiny_top_p_is_greedy(gpt2, twin):
    model = twin(gpt2.spec, gpt2.params)
    rows = rows_of(gpt2, PROMPTS[:2])
    first = model.generate(rows, max_tokens=12, temperature=1.0, top_p=0.9, seed=5)
    assert first == model.generate(rows, max_tokens=12, temperature=1.0, top_p=0.9, seed=5)
    assert first != model.generate(rows, max_tokens=12, temperature=1.0, top_p=0.9, seed=6)
    greedy = model.generate(rows, max_tokens=12, temperature=0)
    assert model.generate(rows, max_tokens=12, temperature=0.7, top_p=1e-6, seed=1) == greedy


@pytest.mark.parametrize("twin", TWINS)
def test_a_row_stops_after_its_end_of_text_token(gpt2, twin):
    rows = rows_of(gpt2, PROMPTS[:2])
    free = twin(gpt2.spec, gpt2.params).generate(rows, max_tokens=10, temperature=0)
    stop = free[0][3]  # made the end-of-text id: the first row ends at its 4th token
    spec = gpt2.spec._replace(config=gpt2.spec.config._replace(eos_id=stop))
    stopped = twin(spec, gpt2.params).generate(rows, max_tokens=10, temperature=0)
    assert stopped[0] == free[0][: free[0].index(stop) + 1]
    second = free[1][: free[1].index(stop) + 1] if stop in free[1] else free[1]
    assert stopped[1] == second
