from __future__ import annotations

import numpy as np
import pytest

from gswarm_kernels import jax_infer
from gswarm_kernels.params import init_params
from gswarm_kernels.quantization import (
    SCALE_SUFFIX,
    dequantize,
    param_bytes,
    params_precision,
    quantize,
)

from .conftest import GPT, rel_error

WIDE = {"in": 64, "hidden": [128, 128], "out": 32, "activation": "gelu"}


@pytest.fixture(scope="module")
def params():
    return init_params("mlp", WIDE, seed=0)


def test_int8_stores_weights_in_a_quarter_of_the_bytes(params):
    q = quantize(params, "int8")
    assert params_precision(q) == "int8"
    weights = [name for name, value in params.items() if value.ndim == 2]
    assert all(q[name].dtype == np.int8 for name in weights)
    assert all(q[name + SCALE_SUFFIX].shape == (params[name].shape[0],) for name in weights)
    assert sum(q[n].nbytes for n in weights) * 4 == sum(params[n].nbytes for n in weights)
    assert all(q[name].dtype == np.float32 for name in params if params[name].ndim == 1)
    assert param_bytes(q) < 0.3 * param_bytes(params)  # scales and float32 biases included


@pytest.mark.parametrize(("precision", "dtype_name"), [("fp16", "float16"), ("bf16", "bfloat16")])
def test_half_precisions_halve_the_bytes(params, precision, dtype_name):
    q = quantize(params, precision)
    assert {v.dtype.name for v in q.values()} == {dtype_name}
    assert params_precision(q) == precision
    assert param_bytes(q) * 2 == param_bytes(params)


@pytest.mark.parametrize(
    ("precision", "bound"), [("int8", 0.02), ("bf16", 0.02), ("fp16", 0.002), ("fp32", 0.0)]
)
def test_dequantized_mlp_outputs_stay_close(params, rng, precision, bound):
    x = rng.standard_normal((32, WIDE["in"]), dtype=np.float32)
    restored = dequantize(quantize(params, precision))
    assert all(v.dtype == np.float32 and v.shape == params[k].shape for k, v in restored.items())
    error = rel_error(
        jax_infer.predict("mlp", WIDE, params, x), jax_infer.predict("mlp", WIDE, restored, x)
    )
    assert error <= bound
    if precision != "fp32":
        assert error > 0  # it really was quantised


def test_dequantized_gpt_logits_stay_close():
    params = init_params("gpt", GPT, seed=0)
    tokens = [list(range(12)), list(range(12, 24))]
    error = rel_error(
        jax_infer.predict("gpt", GPT, params, tokens),
        jax_infer.predict("gpt", GPT, dequantize(quantize(params, "int8")), tokens),
    )
    assert 0 < error < 0.02


def test_int8_rows_are_symmetric_per_row():
    w = np.array([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [3.0, 1.5, -0.75]], dtype=np.float32)
    q = quantize({"w": w}, "int8")
    np.testing.assert_array_equal(q["w"][:, 1], [-127, 0, 64])
    np.testing.assert_allclose(q["w" + SCALE_SUFFIX], [1 / 127, 1.0, 3 / 127])
    np.testing.assert_allclose(dequantize(q)["w"], w, atol=3 / 254)


def test_bad_precision_and_missing_scales_are_refused(params):
    with pytest.raises(ValueError, match=r"target_precision: expected one of .*got 'int4'"):
        quantize(params, "int4")
    q = quantize(params, "int8")
    del q["layers.0.weight" + SCALE_SUFFIX]
    with pytest.raises(ValueError, match="layers.0.weight"):
        dequantize(q)
