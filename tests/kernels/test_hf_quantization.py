"""Quantised Hugging Face models: int8 linear layers running as dynamic int8, fp16/bf16 casts;
close to the original, alike in both twins, and stored and read back as they are."""

from __future__ import annotations

import numpy as np
import pytest
from gswarm_kernels.hf.inputs import model_rows, pad_batch
from gswarm_kernels.hf.jax_model import JaxModel
from gswarm_kernels.hf.layout import linear_layers
from gswarm_kernels.hf.model_dir import load_model_dir, save_model_dir
from gswarm_kernels.hf.quantize import quantize_model
from gswarm_kernels.hf.tokenizer import tokenizer_for
from gswarm_kernels.hf.torch_model import TorchModel
from gswarm_kernels.quantization import SCALE_SUFFIX, dequantize, param_bytes

TEXTS = [
    "Hello world!",
    "Quantised weights answer close to the original ones.",
    "x",
    "Twins agree.",
]
# Lowest cosine similarity of a quantised MiniLM's embeddings to the original's.
CLOSE = {"int8": 0.98, "fp16": 0.99999, "bf16": 0.9999}
# Largest twin difference: an activation that the two frameworks' float rounding puts on either
# side of an int8 step moves by one step, so int8 twins agree less closely than float ones.
TWINS_AGREE = {"int8": 2e-3, "fp16": 1e-4, "bf16": 1e-4}


@pytest.fixture(scope="module")
def minilm(minilm_path):
    return load_model_dir(minilm_path)


@pytest.fixture(scope="module")
def batch(minilm):
    return pad_batch(
        model_rows(minilm.spec, tokenizer_for(minilm.spec, minilm.tokenizer_json), TEXTS)
    )


def cosine(a, b):
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def test_int8_takes_the_linear_layers_only_with_per_output_channel_scales(minilm, gpt2_path):
    for model in (minilm, load_model_dir(gpt2_path)):
        q = quantize_model(model.spec, model.params, "int8")
        linear = linear_layers(model.spec)
        assert linear and {n for n, v in q.items() if v.dtype == np.int8} == set(linear)
        for name, in_out in linear.items():
            weight, scale = model.params[name], q[name + SCALE_SUFFIX]
            out_channels = weight.shape[1] if in_out else weight.shape[0]
            assert scale.shape == ((1, out_channels) if in_out else (out_channels, 1))
            # symmetric rounding: every weight within half a step of its int8 value
            assert np.all(np.abs(dequantize(q)[name] - weight) <= scale / 2 + 1e-7)
        assert all(v.dtype == np.float32 for n, v in q.items() if n not in linear)
        assert param_bytes(q) < 0.7 * param_bytes(model.params)


@pytest.mark.parametrize("precision", ["int8", "fp16", "bf16"])
def test_quantised_minilm_stays_close_and_the_twins_agree(minilm, batch, precision):
    reference = TorchModel(minilm.spec, minilm.params).forward(*batch)
    q = quantize_model(minilm.spec, minilm.params, precision)
    a = TorchModel(minilm.spec, q).forward(*batch)
    b = JaxModel(minilm.spec, q).forward(*batch)
    assert CLOSE[precision] < cosine(a, reference).min() < 1.0 - 1e-9  # close, and not a no-op
    assert np.abs(a - b).max() < TWINS_AGREE[precision]


def test_int8_quantises_activations_at_run_time(minilm, batch):
    q = quantize_model(minilm.spec, minilm.params, "int8")
    dynamic = TorchModel(minilm.spec, q).forward(*batch)
    weights_only = TorchModel(minilm.spec, dequantize(q)).forward(*batch)
    assert np.abs(dynamic - weights_only).max() > 1e-3  # rows rounded to int8 too
    assert (
        TorchModel(minilm.spec, q).memory_bytes()
        < TorchModel(minilm.spec, minilm.params).memory_bytes()
    )


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_quantised_directories_read_back_as_stored(gpt2_path, tmp_path, precision):
    model = load_model_dir(gpt2_path)
    q = model._replace(params=quantize_model(model.spec, model.params, precision))
    save_model_dir(q, tmp_path / precision)
    again = load_model_dir(tmp_path / precision)
    assert {n: v.dtype for n, v in again.params.items()} == {
        n: v.dtype for n, v in q.params.items()
    }
    rows = model_rows(
        model.spec, tokenizer_for(model.spec, model.tokenizer_json), ["the quick", "a"]
    )
    assert TorchModel(again.spec, again.params).generate(
        rows, max_tokens=6, temperature=0
    ) == TorchModel(q.spec, q.params).generate(rows, max_tokens=6, temperature=0)


def test_an_unknown_precision_is_refused(minilm):
    with pytest.raises(ValueError, match="target_precision: expected one of"):
        quantize_model(minilm.spec, minilm.params, "int4")
