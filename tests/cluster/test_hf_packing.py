"""Hugging Face model directories as one stored copy (`storage/hfdir.py`, `weightfile`): the same
files pack to the same bytes, the packed copy describes and loads to the checkpoint's own tensors,
and archives unpack only into their folder."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
from gswarm_kernels.hf.model_dir import load_model_dir

from gswarm_jupyter.backends.base import GenerateOptions
from gswarm_jupyter.backends.registry import load_runner
from gswarm_jupyter.cluster.storage import hfdir, weightfile
from gswarm_jupyter.core.errors import InvalidRequest

from ..kernels.hf_models import tiny_gpt2_dir


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    root = tiny_gpt2_dir(tmp_path_factory.mktemp("gpt2") / "m", shard=True)
    (root / "pytorch_model.bin").write_bytes(b"a pickle is never packed")
    (root / "onnx").mkdir()
    (root / "onnx" / "model.onnx").write_bytes(b"nor an export")
    return root


def packed(root, tmp_path, name="p.tar", **kw) -> np.ndarray:
    hfdir.pack(root, tmp_path / name, **kw)
    return np.fromfile(tmp_path / name, dtype=np.uint8)


def test_the_same_files_pack_to_the_same_bytes_and_load_as_the_checkpoint(gpt2, tmp_path):
    first = packed(gpt2, tmp_path)
    again = tmp_path / "again"
    shutil.copytree(gpt2, again)
    os.utime(again / "config.json", (1, 1))
    assert np.array_equal(first, packed(again, tmp_path, "q.tar"))
    names = set(hfdir.members(first))
    assert "pytorch_model.bin" not in names and not any(n.startswith("onnx") for n in names)
    assert {"config.json", "tokenizer.json", hfdir.META} <= names
    assert sum(n.endswith(".safetensors") for n in names) > 1  # every shard

    d = weightfile.describe(first)
    assert (d.format, d.arch, d.config["model_type"]) == ("huggingface", "hf", "causal_lm")
    assert d.extra["architecture"] == "GPT2LMHeadModel" and d.precision == "fp32"
    views = weightfile.numpy_views(first, d.tensors)
    stored = {}
    for shard in gpt2.glob("*.safetensors"):
        stored |= safetensors.numpy.load_file(shard)
    assert set(views) == set(stored)
    assert all(np.array_equal(views[k], stored[k]) for k in stored)
    assert d.config["param_bytes"] == sum(4 * v.size for v in stored.values())

    config = {**d.config, "files": weightfile.packed_files(first)}
    runner = load_runner("torch", "hf", config, views, "cpu")
    reference = load_runner("torch", "hf", {"model_dir": str(gpt2)}, {}, "cpu")
    rows = runner.check(["hello world"], GenerateOptions())
    assert np.allclose(runner.outputs(rows), reference.outputs(rows))
    assert weightfile.describe_file(str(tmp_path / "p.tar")).tensors == d.tensors


def test_a_wrong_model_type_or_a_link_out_of_the_folder_is_refused(gpt2, tmp_path):
    with pytest.raises(InvalidRequest, match="model_type"):
        packed(gpt2, tmp_path, model_type="embedding")
    linked = tmp_path / "linked"
    shutil.copytree(gpt2, linked)
    (tmp_path / "secret.json").write_text("{}")
    (linked / "extra.json").symlink_to(tmp_path / "secret.json")
    with pytest.raises(InvalidRequest, match="links out"):
        packed(linked, tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidRequest, match="expected config.json"):
        packed(empty, tmp_path)


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_archives_unpack_into_their_folder_only(gpt2, tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(gpt2, "top")
    (tmp_path / "m.tar.gz").write_bytes(buffer.getvalue())
    assert hfdir.archive_kind(tmp_path / "m.tar.gz") == "tar"
    root = hfdir.unpack(tmp_path / "m.tar.gz", tmp_path / "out")
    assert root == tmp_path / "out" / "top" and (root / "config.json").is_file()
    assert np.array_equal(packed(root, tmp_path, "r.tar"), packed(gpt2, tmp_path, "s.tar"))

    (tmp_path / "ts.zip").write_bytes(_zip({"m/data.pkl": b"", "m/code/x.py": b""}))
    assert hfdir.archive_kind(tmp_path / "ts.zip") is None  # a TorchScript archive
    for name, entries in {
        "slip.zip": {"config.json": b"{}", "../x.json": b"{}"},
        "abs.zip": {"/etc/x.json": b"{}"},
        "nothing.zip": {"a/b/config.json": b"{}", "c.txt": b""},
    }.items():
        (tmp_path / name).write_bytes(_zip(entries))
        with pytest.raises(InvalidRequest):
            hfdir.unpack(tmp_path / name, tmp_path / f"u-{name}")
    assert not (tmp_path / "x.json").exists()
    with pytest.raises(InvalidRequest, match="more than"):
        hfdir.unpack(tmp_path / "m.tar.gz", tmp_path / "small", limit=1000)


def test_text_files_read_as_a_directory_does(gpt2, tmp_path):
    from gswarm_kernels.hf.model_dir import load_model_files
    from gswarm_kernels.hf.spec import TextFiles, read_spec

    data = packed(gpt2, tmp_path)
    files = weightfile.packed_files(data)
    assert read_spec(TextFiles(files)) == read_spec(gpt2)
    d = weightfile.describe(data)
    model = load_model_files(files, weightfile.numpy_views(data, d.tensors))
    direct = load_model_dir(gpt2)
    assert model.spec == direct.spec and model.tokenizer_json == direct.tokenizer_json


def test_a_cache_snapshot_links_into_its_blobs_under_the_model_root(gpt2, tmp_path):
    """huggingface_hub's cache: snapshots/<rev>/<file> are links to blobs/<hash>; they pack when
    the links stay under the model root the source lies under, and only then."""
    from gswarm_jupyter.core.sources import parse_source

    repo = tmp_path / "hub" / "models--tiny--gpt2"
    snapshot = repo / "snapshots" / "abc"
    (repo / "blobs").mkdir(parents=True)
    for path in sorted(gpt2.rglob("*")):
        if path.is_file():
            blob = repo / "blobs" / f"{abs(hash(path.name))}"
            shutil.copy(path, blob)
            link = snapshot / path.relative_to(gpt2)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
    source = parse_source(snapshot.as_uri(), [str(tmp_path / "hub"), str(tmp_path)])
    assert source.base == str((tmp_path / "hub").resolve())  # the innermost root
    assert np.array_equal(packed(snapshot, tmp_path, "snap.tar", base=Path(source.base)),
                          packed(gpt2, tmp_path, "real.tar"))
    with pytest.raises(InvalidRequest, match="links out"):
        packed(snapshot, tmp_path, "refused.tar")
