"""Compute plane training and optimisation: real training in torch and JAX on a node, new versions
of the model (registry, copies, services), async progress and cancel, bad input, quantisation.
"""

from __future__ import annotations

import asyncio

import numpy as np
from gswarm_kernels import torch_infer, torch_models

from gswarm_jupyter.cluster.storage.weight_ops import load_weights

from .data_helpers import put_tensor
from .model_helpers import model, register

C = "gswarm/compute/v1"
Q = "gswarm/api/v1/queue"
MLP = "builtin://mlp?in=8&hidden=16&out=4&seed=0"
WIDE = "builtin://mlp?in=32&hidden=64,64&out=8&seed=1"

# A learnable task: the class is the signs of the first two inputs.
X = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)
Y = ((X[:, 0] > 0).astype(np.int64) + 2 * (X[:, 1] > 0)).astype(np.int64)


def body(model_id: str, **extra):
    return {"model_id": model_id, "training_data": X.tolist(), "labels": Y.tolist(), "epochs": 8,
            "learning_rate": 0.01, "optimizer": "adam", "loss_function": "cross_entropy",
            "hyperparameters": {"batch_size": 16}, **extra}


async def weights_on(app, name: str, device: str):
    runtime = app.context.runtime
    node, _, dev = device.rpartition(":")
    future = runtime.client.submit(load_weights, name, dev, pure=False,
                                   workers=[runtime.nodes.get(node).address])
    try:
        return await future
    finally:
        future.release()


def forward(arch, config, params, rows):
    from gswarm_kernels.quantization import dequantize

    module = torch_models.build_module(arch, config, dequantize(params))
    return torch_infer.predict(module, np.asarray(rows, dtype=np.float32))


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


async def wait_finished(api, request_id: str, timeout: float = 120.0):
    for _ in range(int(timeout / 0.1)):
        status, env, _ = await api("GET", f"{C}/training/{request_id}")
        assert status == 200, env
        if env["data"]["status"] in ("completed", "failed", "cancelled"):
            return env["data"]
        await asyncio.sleep(0.1)
    raise AssertionError(f"training {request_id} did not finish")


async def infer(api, model_id: str, rows) -> list[list[float]]:
    status, env, _ = await api("POST", f"{C}/inference",
                               body={"model_id": model_id, "input_data": np.asarray(rows).tolist()})
    assert status == 200, env
    return env["data"]["output_data"]


async def test_torch_training_lowers_the_loss_and_becomes_the_served_version(api, gswarm_app):
    await register(api, "clf", MLP, download_to="node1:disk")
    arch, config, before = await weights_on(gswarm_app, "clf", "node1:disk")
    initial = cross_entropy(forward(arch, config, before, X), Y)

    # A service of the model on the other node's dram (a copy there, refreshed on update).
    status, env, _ = await api("POST", f"{C}/models",
                               body={"model_id": "clf", "nodes": ["node2"], "device": "dram"})
    assert status == 201, env
    served_before = await infer(api, "clf", X[:4])
    np.testing.assert_allclose(served_before, forward(arch, config, before, X[:4]),
                               rtol=1e-5, atol=1e-6)

    status, env, _ = await api("POST", f"{C}/training", body=body("clf"))
    assert status == 200, env
    out = env["data"]
    assert out["request_id"].startswith("req_")
    history = out["loss_history"]
    assert len(history) == out["epochs_completed"] == 8
    assert history[-1] < 0.7 * history[0]
    assert out["final_loss"] == history[-1]
    assert out["training_time"] > 0 and out["model_updated"] is True
    assert out["version"] == 2 and out["framework"] == "torch"
    # It ran where the cheapest copy is (the service's dram copy), and stored the new version
    # on that node's disk; the older copies were refreshed to it.
    assert out["node"] == "node2" and out["device"] == "dram"
    record = await model(api, "clf")
    assert record["version"] == 2
    assert {loc["device"]: loc["status"] for loc in record["locations"]} == {
        "node1:disk": "ready", "node2:disk": "ready", "node2:dram": "ready"}

    # The stored weights are the trained ones, on every copy.
    _, _, after = await weights_on(gswarm_app, "clf", "node1:disk")
    for device in ("node2:disk", "node2:dram"):
        _, _, copied = await weights_on(gswarm_app, "clf", device)
        for key in after:
            np.testing.assert_array_equal(after[key], copied[key])
    assert cross_entropy(forward(arch, config, after, X), Y) < 0.8 * initial

    # ... and the running service answers with them.
    served_after = await infer(api, "clf", X[:4])
    np.testing.assert_allclose(served_after, forward(arch, config, after, X[:4]),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(served_after, served_before)


async def test_torch_and_jax_reach_similar_losses_from_the_same_seed(api):
    await register(api, "twin-t", MLP)
    await register(api, "twin-j", MLP)
    results = {}
    for name, framework in (("twin-t", "torch"), ("twin-j", "jax")):
        status, env, _ = await api("POST", f"{C}/training", body=body(
            name, framework=framework, update_model=False, seed=3,
            hyperparameters={"batch_size": 16, "gradient_clip_norm": 5.0, "weight_decay": 1e-4}))
        assert status == 200, env
        results[framework] = env["data"]
    torch_h, jax_h = results["torch"]["loss_history"], results["jax"]["loss_history"]
    assert jax_h[-1] < 0.7 * jax_h[0]
    np.testing.assert_allclose(torch_h, jax_h, rtol=2e-3)
    assert results["jax"]["framework"] == "jax" and results["jax"]["model_updated"] is False
    assert (await model(api, "twin-j"))["version"] == 1


async def test_rows_stored_as_lists_by_an_older_server_still_train_alike(api, monkeypatch):
    """A task record from before rows were stored as arrays holds them as JSON lists: the task
    converts them itself and trains exactly as on the arrays."""
    from gswarm_jupyter.cluster.training import payload
    from gswarm_jupyter.cluster.training.trainer import Trainer

    await register(api, "old-rows", MLP)
    request = body("old-rows", update_model=False, seed=5, epochs=3)
    status, env, _ = await api("POST", f"{C}/training", body=request)
    assert status == 200, env
    made = Trainer._inline_rows

    def as_an_older_server(self, model, req):
        rows, _ = made(self, model, req)
        lists = {k: v.tolist() for k, v in rows.items()}
        assert not payload.holds_arrays(lists)
        return lists, payload.encode(lists, self._encode)

    monkeypatch.setattr(Trainer, "_inline_rows", as_an_older_server)
    status, again, _ = await api("POST", f"{C}/training", body=request)
    assert status == 200, again
    assert again["data"]["loss_history"] == env["data"]["loss_history"]


async def test_training_from_data_pool_chunks(api):
    await register(api, "chunked", MLP)
    data = await put_tensor(api, X, "node2:dram")
    labels = await put_tensor(api, Y, "node1:disk")
    status, env, _ = await api("POST", f"{C}/training", body={
        **body("chunked"), "training_data": [data["chunk_id"]], "labels": labels["chunk_id"]})
    assert status == 200, env
    history = env["data"]["loss_history"]
    assert len(history) == 8 and history[-1] < 0.7 * history[0]


async def test_async_training_reports_epochs_and_completes(api):
    await register(api, "bg", MLP)
    status, env, _ = await api("POST", f"{C}/training/async", body=body("bg", epochs=5))
    assert status == 202, env
    accepted = env["data"]
    assert accepted["status"] == "queued" and accepted["request_id"].startswith("req_")
    done = await wait_finished(api, accepted["request_id"])
    assert done["status"] == "completed", done
    assert done["progress"] == 100 and done["epochs"] == 5 and done["epochs_completed"] == 5
    assert done["current_loss"] == done["final_loss"] == done["loss_history"][-1]
    assert done["model_updated"] is True and (await model(api, "bg"))["version"] == 2

    status, env, _ = await api("GET", f"{Q}/tasks/{accepted['task_id']}")
    assert env["data"]["task_type"] == "training" and env["data"]["status"] == "completed"
    status, env, _ = await api("GET", f"{C}/training/req_unknown")
    assert (status, env["error"]["code"]) == (404, "NOT_FOUND")


async def test_cancel_stops_training_and_leaves_the_model_unchanged(api, gswarm_app):
    await register(api, "long", MLP, download_to="node1:disk")
    _, _, before = await weights_on(gswarm_app, "long", "node1:disk")
    rows = np.repeat(X, 4, axis=0)
    status, env, _ = await api("POST", f"{C}/training/async", body={
        **body("long", epochs=20000), "training_data": rows.tolist(),
        "labels": np.repeat(Y, 4).tolist(), "hyperparameters": {"batch_size": 4}})
    assert status == 202, env
    request_id, task_id = env["data"]["request_id"], env["data"]["task_id"]
    for _ in range(600):  # until at least two epochs were reported
        _, env, _ = await api("GET", f"{C}/training/{request_id}")
        if env["data"]["epochs_completed"] >= 2:
            break
        await asyncio.sleep(0.1)
    running = env["data"]
    assert running["status"] == "running", running
    assert running["current_loss"] == running["loss_history"][-1] > 0
    assert 0 <= running["progress"] < 100

    status, env, _ = await api("POST", f"{Q}/tasks/{task_id}/cancel")
    assert status == 200, env
    done = await wait_finished(api, request_id)
    assert done["status"] == "cancelled" and done["model_updated"] is None
    assert 2 <= done["epochs_completed"] < 20000
    assert (await model(api, "long"))["version"] == 1
    _, _, after = await weights_on(gswarm_app, "long", "node1:disk")
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])


async def test_bad_training_requests(api):
    await register(api, "bad", MLP)

    async def train(**changes):
        return await api("POST", f"{C}/training", body={**body("bad", epochs=2), **changes})

    status, env, _ = await train(labels=Y[:10].tolist())
    assert (status, env["error"]["code"]) == (400, "INVALID_INPUT_DATA"), env
    assert env["error"]["details"]["field"] == "labels"
    status, env, _ = await api("POST", f"{C}/training/async",
                               body={**body("bad"), "training_data": X[:, :5].tolist()})
    assert (status, env["error"]["code"]) == (400, "INVALID_INPUT_DATA"), env
    status, env, _ = await train(labels=(Y + 4).tolist())  # class 4+ of a 4-class model
    assert (status, env["error"]["code"]) == (400, "INVALID_INPUT_DATA"), env
    status, env, _ = await train(optimizer="lbfgs")
    assert (status, env["error"]["code"]) == (400, "INVALID_REQUEST")
    assert env["error"]["details"]["field"] == "optimizer"
    status, env, _ = await train(loss_function="hinge")
    assert (status, env["error"]["code"]) == (400, "INVALID_REQUEST")
    assert env["error"]["details"]["field"] == "loss_function"
    status, env, _ = await train(model_id="nope")
    assert (status, env["error"]["code"]) == (404, "MODEL_NOT_FOUND")
    status, env, _ = await train(device="node9:dram")
    assert (status, env["error"]["code"]) == (404, "NOT_FOUND")

    # A loss that overflows: the task fails with the epoch, the model is not updated.
    status, env, _ = await train(loss_function="mse", labels=np.full((64, 4), 1e30).tolist())
    assert (status, env["error"]["code"]) == (500, "TASK_FAILED"), env
    assert env["error"]["details"]["epoch"] == 1 and "epoch 1" in env["error"]["message"]

    # A synchronous call that runs out of time: 504, the training cancelled.
    status, env, _ = await train(epochs=20000, timeout=0.5)
    assert (status, env["error"]["code"]) == (504, "REQUEST_TIMEOUT"), env
    assert (await model(api, "bad"))["version"] == 1


async def test_quantisation_sizes_errors_and_serving(api, gswarm_app):
    await register(api, "wide", WIDE, download_to="node2:disk")
    bounds = {"int8": (0.4, 0.02), "fp16": (0.6, 1e-3), "bf16": (0.6, 1e-2)}  # ratio, error
    results = {}
    for precision, (max_ratio, max_error) in bounds.items():
        status, env, _ = await api("POST", f"{C}/models/wide/optimize", body={
            "optimization_type": "quantization", "target_precision": precision})
        assert status == 200, env
        out = env["data"]
        results[precision] = out
        assert out["optimized_model_id"] == f"wide-{precision}"
        assert out["compression_ratio"] == out["optimized_size"] / out["original_size"]
        assert out["compression_ratio"] < max_ratio, out
        assert 0 < out["accuracy_loss"] < max_error, out
        assert out["optimization_time"] > 0
        record = await model(api, f"wide-{precision}")
        assert record["model_size"] == out["optimized_size"] and record["version"] == 1
        assert record["metadata"]["precision"] == precision
        assert [loc["device"] for loc in record["locations"]] == ["node2:disk"]
    original = await model(api, "wide")
    assert results["int8"]["original_size"] == original["model_size"]
    assert results["int8"]["optimized_size"] < results["fp16"]["optimized_size"]

    # Measured on given calibration rows; the int8 model serves (dequantised on load).
    rows = np.random.default_rng(5).standard_normal((16, 32)).astype(np.float32)
    status, env, _ = await api("POST", f"{C}/models/wide/optimize", body={
        "target_precision": "int8", "calibration_data": rows.tolist(),
        "options": {"optimized_model_id": "wide-q"}})
    assert status == 200, env
    arch, config, params = await weights_on(gswarm_app, "wide", "node2:disk")
    reference = forward(arch, config, params, rows)
    status, env2, _ = await api("POST", f"{C}/models",
                                body={"model_id": "wide-q", "nodes": ["node1"], "device": "dram"})
    assert status == 201, env2
    served = np.asarray(await infer(api, "wide-q", rows))
    error = np.linalg.norm(served - reference) / np.linalg.norm(reference)
    assert abs(error - env["data"]["accuracy_loss"]) < 1e-4

    status, env, _ = await api("POST", f"{C}/models/wide/optimize",
                               body={"target_precision": "int8"})
    assert (status, env["error"]["code"]) == (409, "CONFLICT")
    status, env, _ = await api("POST", f"{C}/models/wide/optimize",
                               body={"optimization_type": "pruning"})
    assert (status, env["error"]["code"]) == (400, "INVALID_REQUEST")
    assert env["error"]["details"]["field"] == "optimization_type"
    status, env, _ = await api("POST", f"{C}/models/wide/optimize",
                               body={"target_precision": "int4"})
    assert (status, env["error"]["code"]) == (400, "INVALID_REQUEST")
    status, env, _ = await api("POST", f"{C}/models/nope/optimize", body={})
    assert (status, env["error"]["code"]) == (404, "MODEL_NOT_FOUND")


async def test_loading_with_quantization_serves_the_quantised_model(api):
    """`enable_quantization` loads through the optimisation path: `<model>-int8` is made once and
    served; `enable_mixed_precision` does the same with bf16."""
    status, env, _ = await api("POST", f"{C}/models", body={
        "model_id": "small", "model_path": WIDE, "enable_quantization": True})
    assert status == 201, env
    assert env["data"]["model_id"] == "small-int8"
    assert (await model(api, "small-int8"))["metadata"]["precision"] == "int8"
    assert (await model(api, "small"))["metadata"].get("precision") in (None, "fp32")
    rows = np.random.default_rng(1).standard_normal((3, 32)).astype(np.float32)
    assert np.asarray(await infer(api, "small-int8", rows)).shape == (3, 8)

    status, env, _ = await api("POST", f"{C}/models", body={
        "model_id": "small", "enable_quantization": True})
    assert (status, env["error"]["code"]) == (409, "MODEL_ALREADY_LOADED")

    status, env, _ = await api("POST", f"{C}/models", body={
        "model_id": "small", "enable_mixed_precision": True})
    assert status == 201, env
    assert env["data"]["model_id"] == "small-bf16"
