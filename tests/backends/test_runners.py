"""The torch and JAX runners over one set of weights, input checks, devices, the framework registry."""

from __future__ import annotations

import numpy as np
import pytest
from gswarm_kernels import init_params, parse_builtin_url

from gswarm_jupyter.backends import registry
from gswarm_jupyter.backends.base import GenerateOptions
from gswarm_jupyter.backends.devices import framework_device
from gswarm_jupyter.core.errors import InvalidInputData, InvalidRequest, NotImplementedFeature

MLP = parse_builtin_url("builtin://mlp?in=8&hidden=16&out=4&seed=2")
GPT = parse_builtin_url("builtin://gpt?vocab=32&d_model=16&layers=1&heads=2&context=8&seed=1")


def runners(spec):
    params = init_params(spec.arch, spec.config, spec.seed)
    return [registry.load_runner(fw, spec.arch, spec.config, params, "dram") for fw in ("torch", "jax")]


def test_mlp_rows_match_across_frameworks_and_batch_sizes():
    torch_runner, jax_runner = runners(MLP)
    x = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    a = np.asarray(torch_runner.run(list(x), GenerateOptions()))
    b = np.asarray(jax_runner.run(list(x), GenerateOptions()))  # 5 rows padded to 8 inside
    assert a.shape == (5, 4)
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(a[:2], torch_runner.run(list(x[:2]), GenerateOptions()), atol=1e-6)
    assert torch_runner.memory_bytes() == jax_runner.memory_bytes() == 4 * (8 * 16 + 16 + 16 * 4 + 4)


def test_gpt_generation_greedy_alike_and_seeded_sampling_repeatable():
    torch_runner, jax_runner = runners(GPT)
    greedy = GenerateOptions(max_tokens=5, temperature=0)
    prompts = [[1, 2, 3], [7]]
    out = torch_runner.run(torch_runner.check(prompts, greedy), greedy)
    assert out == jax_runner.run(jax_runner.check(prompts, greedy), greedy)
    assert [len(r) for r in out] == [5, 5]
    sampled = GenerateOptions(max_tokens=6, temperature=1.0, top_p=0.8, seed=4)
    first = torch_runner.run(torch_runner.check(prompts, sampled), sampled)
    assert first == torch_runner.run(torch_runner.check(prompts, sampled), sampled)


@pytest.mark.parametrize(
    ("rows", "details"),
    [
        ([[1.0, 2.0]], {"field": "input_data", "expected": "shape (rows, 8)", "got": "(1, 2)"}),
        ([], {"field": "input_data", "expected": "shape (rows, 8)", "got": "(0,)"}),
        ([["a"] * 8], {"field": "input_data", "expected": "rows of 8 numbers",
                       "got": "ragged or non-numeric rows"}),
    ],
)
def test_mlp_input_errors_give_expected_vs_got(rows, details):
    runner, _ = runners(MLP)
    with pytest.raises(InvalidInputData) as caught:
        runner.check(rows, GenerateOptions())
    assert caught.value.details == details


def test_gpt_input_errors():
    runner, _ = runners(GPT)
    with pytest.raises(InvalidInputData) as caught:
        runner.check([[1, 40]], GenerateOptions())
    assert caught.value.details == {"field": "input_data[0]", "expected": "token ids must be in [0, 32)", "got": "40"}
    with pytest.raises(InvalidInputData) as caught:
        runner.check([[1]], GenerateOptions(top_p=0))
    assert caught.value.details["field"] == "top_p"


def test_devices_map_onto_framework_devices():
    assert [framework_device(d) for d in ("dram", "vgpu1", "cpu", "gpu0", "gpu3", "cuda")] == [
        "cpu", "cpu", "cpu", "cuda:0", "cuda:3", "cuda:0"]
    with pytest.raises(InvalidRequest):
        framework_device("disk")


def test_a_framework_that_is_not_installed_is_not_implemented(monkeypatch):
    # A made-up framework whose package does not exist stands for an uninstalled one.
    monkeypatch.setitem(registry.FRAMEWORKS, "absent", ("gswarm_no_such_package", "x", "X"))
    with pytest.raises(NotImplementedFeature) as caught:
        registry.runner_class("absent")
    assert caught.value.status == 501 and caught.value.details["framework"] == "absent"
    with pytest.raises(InvalidRequest):
        registry.runner_class("mxnet")
