from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors.numpy

from gswarm_kernels.checkpoint import (
    checkpoint_bytes,
    parse_checkpoint_bytes,
    read_checkpoint,
    read_checkpoint_metadata,
    save_checkpoint,
)
from gswarm_kernels.params import init_params
from gswarm_kernels.quantization import quantize

from .conftest import GPT, MLP


def _assert_identical(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert a[name].tobytes() == b[name].tobytes(), name


@pytest.mark.parametrize(("arch", "config"), [("mlp", MLP), ("gpt", GPT)])
def test_file_round_trip_is_byte_identical(tmp_path, arch, config):
    params = init_params(arch, config, seed=3)
    folder = tmp_path / "store"
    folder.mkdir()
    path = folder / "model.safetensors"
    save_checkpoint(path, arch, config, params)
    got_arch, got_config, got_params = read_checkpoint(path)
    assert (got_arch, got_config) == (arch, config)
    _assert_identical(params, got_params)
    assert [p.name for p in folder.iterdir()] == ["model.safetensors"]  # no temporary left behind


def test_metadata_names_the_architecture(tmp_path):
    path = tmp_path / "m.safetensors"
    config = {"layers": 1, "vocab": 40, "d_model": 16, "context": 12}  # heads left to its default
    save_checkpoint(path, "gpt", config, init_params("gpt", config, 0))
    meta = read_checkpoint_metadata(path)
    assert meta == {
        "arch": "gpt",
        "config": GPT | {"layers": 1},
        "precision": "fp32",
        "format_version": "1",
    }
    with open(path, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    assert header["__metadata__"]["arch"] == "gpt"
    assert json.loads(header["__metadata__"]["config"]) == GPT | {"layers": 1}


def test_bytes_round_trip_is_byte_identical():
    params = init_params("mlp", MLP, seed=1)
    arch, config, got = parse_checkpoint_bytes(checkpoint_bytes("mlp", MLP, params))
    assert (arch, config) == ("mlp", MLP)
    _assert_identical(params, got)


@pytest.mark.parametrize("precision", ["fp16", "bf16", "int8"])
def test_quantized_params_round_trip_as_stored(tmp_path, precision):
    stored = quantize(init_params("gpt", GPT, seed=1), precision)
    _assert_identical(
        stored,
        parse_checkpoint_bytes(checkpoint_bytes("gpt", GPT, stored), as_float32=False).params,
    )
    path = tmp_path / "q.safetensors"
    save_checkpoint(path, "gpt", GPT, stored)
    assert read_checkpoint_metadata(path)["precision"] == precision
    _assert_identical(stored, read_checkpoint(path, as_float32=False).params)
    as_float = read_checkpoint(path).params
    assert all(v.dtype == np.float32 for v in as_float.values()) and set(as_float) == set(
        init_params("gpt", GPT, 0)
    )


def test_a_file_without_arch_metadata_is_refused(tmp_path):
    path = tmp_path / "plain.safetensors"
    safetensors.numpy.save_file({"w": np.zeros(3, np.float32)}, path)
    with pytest.raises(ValueError, match="arch"):
        read_checkpoint(path)
    with pytest.raises(ValueError, match="arch"):
        parse_checkpoint_bytes(safetensors.numpy.save({"w": np.zeros(3, np.float32)}))


def test_tensors_that_do_not_fit_the_architecture_are_refused(tmp_path):
    params = init_params("mlp", MLP, seed=0)
    params["layers.0.weight"] = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match="layers.0.weight"):
        save_checkpoint(tmp_path / "bad.safetensors", "mlp", MLP, params)
    data = safetensors.numpy.save(params, metadata={"arch": "mlp", "config": json.dumps(MLP)})
    with pytest.raises(ValueError, match="layers.0.weight"):
        parse_checkpoint_bytes(data)


def test_garbage_bytes_are_refused():
    with pytest.raises(ValueError, match="safetensors"):
        parse_checkpoint_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")


@pytest.mark.parametrize(("arch", "config"), [("mlp", MLP), ("gpt", GPT)])
def test_a_cpu_module_adopts_the_mapped_checkpoint_and_its_writes_stay_private(
    tmp_path, arch, config
):
    torch = pytest.importorskip("torch")
    from gswarm_kernels.torch_models import build_module

    params = init_params(arch, config, seed=2)
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, arch, config, params)
    read = read_checkpoint(path).params
    module = build_module(arch, config, read)
    copied = build_module(arch, config, params)
    for name, tensor in module.state_dict().items():  # the mapping is the storage: no copy
        assert tensor.data_ptr() == read[name].ctypes.data, name
    x = torch.arange(6).reshape(1, 6) % 8 if arch == "gpt" else torch.ones(2, MLP["in"])
    with torch.no_grad():
        assert torch.equal(module(x), copied(x))
        for p in module.parameters():
            p.add_(1.0)  # training writes in place
    _assert_identical(params, read_checkpoint(path).params)  # the file is as saved


def test_a_file_that_is_not_safetensors_is_refused_clearly(tmp_path):
    for name, data in (("empty", b""), ("short", b"abc"), ("junk", b"\x10" + bytes(7) + b"[1,2]")):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ValueError, match="not a safetensors file"):
            read_checkpoint(path)
