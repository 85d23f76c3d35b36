"""The torch and JAX twins compute the same function over the same parameter layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gswarm_kernels import jax_models, torch_models
from gswarm_kernels.params import check_params, init_params, param_shapes

from .conftest import GPT, MLP, perturbed, rel_error

CONFIGS = [
    ("mlp", MLP),
    ("mlp", {"in": 5, "hidden": [7], "out": 2, "activation": "gelu"}),
    ("mlp", {"in": 4, "hidden": [], "out": 3, "activation": "relu"}),
    ("gpt", GPT),
    ("gpt", {"vocab": 23, "d_model": 12, "layers": 1, "heads": 1, "context": 9}),
]


def _inputs(arch, config, rng):
    if arch == "mlp":
        return rng.standard_normal((5, config["in"]), dtype=np.float32)
    return rng.integers(0, config["vocab"], size=(3, config["context"]))


@pytest.mark.parametrize(("arch", "config"), CONFIGS)
def test_torch_state_dict_is_the_shared_layout(arch, config):
    module = torch_models.build_module(arch, config)
    state = module.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == param_shapes(arch, config)
    assert list(state) == list(param_shapes(arch, config))


@pytest.mark.parametrize(("arch", "config"), CONFIGS)
def test_torch_and_jax_forward_agree(arch, config, rng):
    params = perturbed(init_params(arch, config, seed=0))
    x = _inputs(arch, config, rng)
    module = torch_models.build_module(arch, config, params)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    got = np.asarray(
        jax_models.jitted_forward(arch, config)(jax_models.device_params(arch, config, params), x)
    )
    assert got.shape == expected.shape
    assert rel_error(expected, got) < 1e-5


def test_gpt_is_causal_in_both_frameworks(rng):
    params = perturbed(init_params("gpt", GPT, seed=0))
    x = rng.integers(0, GPT["vocab"], size=(2, 8))
    changed = x.copy()
    changed[:, 5:] = (changed[:, 5:] + 1) % GPT["vocab"]
    module = torch_models.build_module("gpt", GPT, params)
    forward = jax_models.jitted_forward("gpt", GPT)
    with torch.no_grad():
        a, b = (module(torch.from_numpy(t)).numpy() for t in (x, changed))
    np.testing.assert_array_equal(a[:, :5], b[:, :5])
    assert not np.allclose(a[:, 5:], b[:, 5:])
    a, b = (np.asarray(forward(params, t)) for t in (x, changed))
    np.testing.assert_allclose(a[:, :5], b[:, :5], rtol=1e-6, atol=1e-6)


def test_load_params_round_trips_through_torch():
    params = perturbed(init_params("gpt", GPT, seed=0))
    module = torch_models.build_module("gpt", GPT, params)
    back = torch_models.module_params(module)
    assert list(back) == list(params)
    for name in params:
        np.testing.assert_array_equal(back[name], params[name])


@pytest.mark.parametrize(("arch", "config"), [CONFIGS[0], CONFIGS[3]])
def test_init_is_deterministic_per_seed(arch, config):
    a, b, c = (init_params(arch, config, seed) for seed in (5, 5, 6))
    check_params(arch, config, a)
    assert all(v.dtype == np.float32 for v in a.values())
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a if a[k].ndim == 2)


def test_init_is_scaled():
    params = init_params("mlp", {"in": 400, "hidden": [300], "out": 3}, seed=0)
    assert abs(params["layers.0.weight"].std() - np.sqrt(2 / 400)) < 0.005
    assert not params["layers.0.bias"].any()
    gpt = init_params("gpt", GPT, seed=0)
    assert abs(gpt["tok_emb.weight"].std() - 0.02) < 0.005
    assert (gpt["blocks.0.ln1.weight"] == 1).all()


def test_params_of_the_wrong_shape_are_refused():
    params = init_params("mlp", MLP, seed=0)
    params["layers.1.weight"] = params["layers.1.weight"][:, :-1]
    with pytest.raises(ValueError, match="layers.1.weight"):
        torch_models.build_module("mlp", MLP, params)
    with pytest.raises(ValueError, match="layers.1.weight"):
        jax_models.device_params("mlp", MLP, params)
    del params["layers.1.weight"]
    with pytest.raises(ValueError, match="missing 'layers.1.weight'"):
        check_params("mlp", MLP, params)
    with pytest.raises(ValueError, match="missing 'layers.1.weight'"):
        torch_models.build_module("mlp", MLP, params)


def test_load_params_refuses_before_changing_the_module():
    module = torch_models.build_module("mlp", MLP, init_params("mlp", MLP, seed=0))
    before = torch_models.module_params(module)
    wrong = init_params("mlp", MLP, seed=1)
    del wrong["layers.1.bias"]
    with pytest.raises(ValueError, match="missing 'layers.1.bias'"):
        torch_models.load_params(module, wrong)
    after = torch_models.module_params(module)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_layers_skip_their_random_init_only_on_the_meta_device(monkeypatch):
    import torch

    calls = []
    for init in ("kaiming_uniform_", "normal_"):  # Linear's and Embedding's random init
        monkeypatch.setattr(torch.nn.init, init,
                            lambda t, *a, init=init, **kw: calls.append(init) or t)
    with torch.device("meta"):
        torch_models.Linear(4, 3), torch_models.Embedding(5, 2)
    assert calls == []
    torch_models.Linear(4, 3), torch_models.Embedding(5, 2)
    assert calls == ["kaiming_uniform_", "normal_"]
