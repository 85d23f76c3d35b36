from __future__ import annotations

import numpy as np
import pytest

from gswarm_kernels import jax_infer, torch_infer
from gswarm_kernels.params import init_params
from gswarm_kernels.torch_models import build_module

from .conftest import GPT, MLP, perturbed, rel_error

PROMPTS = [[1, 2, 3], [4], list(range(20))]  # ragged, and the last one longer than the context


@pytest.fixture(scope="module")
def gpt_params():
    return perturbed(init_params("gpt", GPT, seed=0), scale=0.05)


@pytest.fixture(scope="module")
def gpt_module(gpt_params):
    return build_module("gpt", GPT, gpt_params)


def test_mlp_predict_agrees_across_frameworks_and_batch_sizes(rng):
    params = init_params("mlp", MLP, seed=0)
    module = build_module("mlp", MLP, params, device="cpu")
    x = rng.standard_normal((7, MLP["in"])).tolist()
    whole = torch_infer.predict(module, x)
    assert whole.shape == (7, MLP["out"]) and whole.dtype == np.float32
    assert (
        rel_error(whole, torch_infer.predict(module, x, batch_size=3)) < 1e-6
    )  # BLAS may block differently
    assert rel_error(whole, jax_infer.predict("mlp", MLP, params, x)) < 1e-5
    assert rel_error(whole, jax_infer.predict("mlp", MLP, params, x, batch_size=2)) < 1e-5


def test_gpt_predict_gives_logits(gpt_module, gpt_params):
    tokens = [[1, 2, 3, 4], [5, 6, 7, 8]]
    logits = torch_infer.predict(gpt_module, tokens)
    assert logits.shape == (2, 4, GPT["vocab"])
    assert rel_error(logits, jax_infer.predict("gpt", GPT, gpt_params, tokens)) < 1e-5


def test_greedy_generation_is_identical_across_frameworks(gpt_module, gpt_params):
    a = torch_infer.generate(gpt_module, PROMPTS, max_tokens=10, temperature=0)
    b = jax_infer.generate("gpt", GPT, gpt_params, PROMPTS, max_tokens=10, temperature=0)
    assert [len(row) for row in a] == [10, 10, 10]
    assert all(0 <= t < GPT["vocab"] for row in a for t in row)
    assert a == b


def test_generation_sees_only_the_last_context_tokens(gpt_module, gpt_params):
    long = list(range(30))
    cropped = long[-GPT["context"] :]
    assert torch_infer.generate(
        gpt_module, [long], max_tokens=6, temperature=0
    ) == torch_infer.generate(gpt_module, [cropped], max_tokens=6, temperature=0)
    assert jax_infer.generate("gpt", GPT, gpt_params, [long], max_tokens=6, temperature=0) == (
        jax_infer.generate("gpt", GPT, gpt_params, [cropped], max_tokens=6, temperature=0)
    )


def test_a_ragged_batch_generates_as_each_prompt_alone(gpt_module):
    together = torch_infer.generate(gpt_module, PROMPTS, max_tokens=5, temperature=0)
    alone = [torch_infer.generate(gpt_module, [p], max_tokens=5, temperature=0)[0] for p in PROMPTS]
    assert together == alone


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_sampling_is_reproducible_per_seed(framework, gpt_module, gpt_params):
    def run(seed, top_p=1.0):
        if framework == "torch":
            return torch_infer.generate(
                gpt_module, PROMPTS, max_tokens=8, temperature=1.5, top_p=top_p, seed=seed
            )
        return jax_infer.generate(
            "gpt", GPT, gpt_params, PROMPTS, max_tokens=8, temperature=1.5, top_p=top_p, seed=seed
        )

    assert run(1) == run(1)
    assert run(1) != run(2)
    # A nucleus so small it holds only the most likely token is greedy decoding.
    greedy = torch_infer.generate(gpt_module, PROMPTS, max_tokens=8, temperature=0)
    assert run(3, top_p=1e-6) == greedy


def test_zero_max_tokens_generates_nothing(gpt_module):
    assert torch_infer.generate(gpt_module, PROMPTS, max_tokens=0) == [[], [], []]


@pytest.mark.parametrize(
    ("prompts", "kwargs", "message"),
    [
        (
            [[1, 2, GPT["vocab"]]],
            {},
            rf"prompts\[0\]: token ids must be in \[0, {GPT['vocab']}\), got {GPT['vocab']}",
        ),
        ([[3], [-1]], {}, r"prompts\[1\]: .* got -1"),
        ([[]], {}, r"prompts\[0\]: expected a non-empty row"),
        ([[1.5]], {}, r"prompts\[0\]: expected integer token ids"),
        ([], {}, r"prompts: expected a non-empty list"),
        ([[1]], {"temperature": -1.0}, r"^temperature"),
        ([[1]], {"top_p": 0.0}, r"^top_p"),
        ([[1]], {"max_tokens": -2}, r"^max_tokens"),
    ],
)
def test_bad_generation_requests_are_refused(gpt_module, gpt_params, prompts, kwargs, message):
    kwargs = {"max_tokens": 2} | kwargs
    with pytest.raises(ValueError, match=message):
        torch_infer.generate(gpt_module, prompts, **kwargs)
    with pytest.raises(ValueError, match=message):
        jax_infer.generate("gpt", GPT, gpt_params, prompts, **kwargs)


def test_bad_vectors_are_refused_with_expected_and_got():
    params = init_params("mlp", MLP, seed=0)
    module = build_module("mlp", MLP, params)
    for bad in ([[1.0, 2.0]], [[1.0] * 6, [1.0] * 5], [["a"] * 6]):
        with pytest.raises(ValueError, match="input_data: expected"):
            torch_infer.predict(module, bad)
        with pytest.raises(ValueError, match="input_data: expected"):
            jax_infer.predict("mlp", MLP, params, bad)
    with pytest.raises(ValueError, match=r"expected shape \(rows, 6\), got \(1, 2\)"):
        torch_infer.predict(module, [[1.0, 2.0]])


def test_gpt_rows_longer_than_the_context_are_refused_for_logits(gpt_module):
    with pytest.raises(ValueError, match=f"at most {GPT['context']} tokens, got 13"):
        torch_infer.predict(gpt_module, [list(range(13))])
