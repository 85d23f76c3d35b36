from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gswarm_kernels.builtin import builtin_url, normalize_config, parse_builtin_url


def test_parses_the_documented_mlp_address():
    spec = parse_builtin_url("builtin://mlp?in=8&hidden=16,16&out=4&seed=0")
    assert spec == ("mlp", {"in": 8, "hidden": [16, 16], "out": 4, "activation": "relu"}, 0)


def test_parses_the_documented_gpt_address():
    arch, config, seed = parse_builtin_url(
        "builtin://gpt?vocab=256&d_model=128&layers=2&heads=4&context=128&seed=7"
    )
    assert (arch, seed) == ("gpt", 7)
    assert config == {"vocab": 256, "d_model": 128, "layers": 2, "heads": 4, "context": 128}


def test_missing_parameters_take_defaults():
    assert parse_builtin_url("builtin://gpt?layers=1") == (
        "gpt",
        {"vocab": 256, "d_model": 128, "layers": 1, "heads": 4, "context": 128},
        0,
    )
    arch, config, seed = parse_builtin_url("builtin://mlp?hidden=&activation=gelu&seed=3")
    assert config == {"in": 8, "hidden": [], "out": 4, "activation": "gelu"} and seed == 3


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("builtin://resnet?depth=3", "arch"),
        ("builtin://mlp?width=3", "width"),
        ("builtin://mlp?in=eight", "in"),
        ("builtin://mlp?in=1.5", "in"),
        ("builtin://mlp?out=0", "out"),
        ("builtin://mlp?hidden=16,x", "hidden"),
        ("builtin://mlp?hidden=16,,16", "hidden"),
        ("builtin://mlp?activation=tanh", "activation"),
        ("builtin://mlp?in=4&in=5", "in"),
        ("builtin://mlp?seed=-1", "seed"),
        ("builtin://gpt?d_model=30&heads=4", "heads"),
        ("builtin://gpt?layers=", "layers"),
        ("file://mlp?in=3", "source_url"),
    ],
)
def test_bad_addresses_name_the_parameter(url, names):
    with pytest.raises(ValueError, match=f"^{names}"):
        parse_builtin_url(url)


def test_config_from_json_is_checked_like_a_url():
    assert normalize_config("mlp", {"hidden": [3]})["hidden"] == [3]
    with pytest.raises(ValueError, match="^in"):
        normalize_config("mlp", {"in": True})
    with pytest.raises(ValueError, match="^hidden"):
        normalize_config("mlp", {"hidden": 16})


@given(
    hidden=st.lists(st.integers(1, 512), max_size=4),
    width=st.integers(1, 4096),
    activation=st.sampled_from(["relu", "gelu"]),
    seed=st.integers(0, 2**32),
)
def test_builtin_url_round_trips(hidden, width, activation, seed):
    config = {"in": width, "hidden": hidden, "out": width, "activation": activation}
    assert parse_builtin_url(builtin_url("mlp", config, seed)) == ("mlp", config, seed)
