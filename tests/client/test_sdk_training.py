"""The SDK's training and optimisation (`client.compute.train`, `train_async`, `training`,
`optimize`) against a real server process: measured losses, versions, and errors as the `core`
exceptions the server raised."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from gswarm_jupyter.client import AsyncGswarmClient, GswarmClient
from gswarm_jupyter.core.errors import (
    InvalidInputData,
    InvalidRequest,
    ModelNotFound,
    NotFound,
    RequestTimeout,
)

MLP = "builtin://mlp?in=8&hidden=16&out=4&seed={seed}"


@pytest.fixture
def client(live_env):
    with GswarmClient() as client:
        yield client


def _task(n: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A learnable toy task: the class is the largest of the first four inputs."""
    x = np.random.default_rng(seed).normal(size=(n, 8)).astype(np.float32)
    return x, x[:, :4].argmax(axis=1)


def _register(client: GswarmClient, name: str, seed: int) -> None:
    client.models.register(name, MLP.format(seed=seed))


def test_training_lowers_the_loss_writes_a_version_and_is_served(client):
    _register(client, "sdk-t-mlp", 10)
    x, y = _task()
    probe = x[:4].tolist()
    client.compute.load("sdk-t-mlp")
    try:
        before = client.compute.infer("sdk-t-mlp", probe)["output_data"]
        result = client.compute.train("sdk-t-mlp", x, y, epochs=6, learning_rate=1e-2,
                                      batch_size=32)  # numpy in; batch_size as hyperparameter
        history = result["loss_history"]
        assert len(history) == result["epochs_completed"] == 6
        assert result["final_loss"] == history[-1] < 0.7 * history[0]
        assert result["model_updated"] is True and result["request_id"].startswith("req_")
        assert result["training_time"] > 0 and result["steps"] == 6 * 8
        assert client.models.get("sdk-t-mlp")["version"] == result["version"] == 2

        after = client.compute.infer("sdk-t-mlp", probe)["output_data"]  # the new version
        assert not np.allclose(before, after)
        accuracy = (np.argmax(client.compute.infer("sdk-t-mlp", x.tolist())["output_data"], 1)
                    == y).mean()
        assert accuracy > 0.6  # chance is 0.25
    finally:
        client.compute.unload("sdk-t-mlp")


def test_torch_and_jax_reach_similar_losses_from_the_same_seed(client):
    _register(client, "sdk-t-twin", 11)
    x, y = _task(128, seed=1)
    onehot = np.eye(4, dtype=np.float32)[y]  # class-probability labels
    runs = {fw: client.compute.train("sdk-t-twin", x, onehot, epochs=3, learning_rate=5e-3,
                                     optimizer="adamw", framework=fw, update_model=False,
                                     hyperparameters={"batch_size": 16, "weight_decay": 1e-3})
            for fw in ("torch", "jax")}
    assert [r["framework"] for r in runs.values()] == ["torch", "jax"]
    assert not any(r["model_updated"] for r in runs.values())
    assert client.models.get("sdk-t-twin")["version"] == 1
    np.testing.assert_allclose(runs["torch"]["loss_history"], runs["jax"]["loss_history"],
                               rtol=1e-3)
    assert runs["jax"]["final_loss"] < runs["jax"]["loss_history"][0]


def test_async_training_reports_progress_and_its_result(client):
    _register(client, "sdk-t-async", 12)
    x, y = _task(512, seed=2)
    accepted = client.compute.train_async("sdk-t-async", x, y, epochs=4, learning_rate=1e-2,
                                          framework="jax", batch_size=16, priority="high")
    assert accepted["status"] == "queued" and accepted["priority"] == "high"
    seen = []
    task = client.tasks.wait(accepted["task_id"], timeout=300, poll=0.05,
                             progress=lambda t: seen.append(
                                 client.compute.training(accepted["request_id"])))
    assert task["status"] == "completed"
    final = client.compute.training(accepted["request_id"])
    assert final["status"] == "completed" and final["progress"] == 100
    assert final["task_id"] == accepted["task_id"] and final["model_updated"] is True
    assert final["epochs"] == final["epochs_completed"] == len(final["loss_history"]) == 4
    assert final["current_loss"] == final["final_loss"] == final["loss_history"][-1]
    assert final["final_loss"] < final["loss_history"][0]
    for status in seen:  # what a poll saw was a prefix of the history, never more
        assert status["loss_history"] == final["loss_history"][: len(status["loss_history"])]
        assert status["status"] in ("queued", "running", "completed")

    with pytest.raises(NotFound):
        client.compute.training("req_0000000000000000")


def test_the_async_client_trains_too(live_env):
    x, y = _task(64, seed=3)

    async def run():
        async with AsyncGswarmClient() as client:
            await client.models.register("sdk-t-aclient", MLP.format(seed=13))
            return await client.compute.train("sdk-t-aclient", x, y.tolist(), epochs=2,
                                              learning_rate=1e-2, update_model=False)

    result = asyncio.run(run())
    assert result["epochs_completed"] == 2 and result["model_updated"] is False


def test_int8_quantisation_is_smaller_measured_and_servable(client):
    _register(client, "sdk-t-q", 14)
    x, _ = _task(32, seed=4)
    result = client.compute.optimize("sdk-t-q", "int8", calibration_data=x,
                                     options={"optimized_model_id": "sdk-t-q8"})
    assert result["optimized_model_id"] == "sdk-t-q8" and result["target_precision"] == "int8"
    assert result["optimized_size"] < result["original_size"]
    assert result["compression_ratio"] == pytest.approx(
        result["optimized_size"] / result["original_size"])
    assert 0 <= result["accuracy_loss"] < 0.05  # relative output error against fp32
    assert result["optimization_time"] > 0
    assert client.models.get("sdk-t-q8")["status"] == "ready"

    for name in ("sdk-t-q", "sdk-t-q8"):
        client.compute.load(name)
    try:
        full = np.asarray(client.compute.infer("sdk-t-q", x.tolist())["output_data"])
        quant = np.asarray(client.compute.infer("sdk-t-q8", x.tolist())["output_data"])
        assert np.linalg.norm(quant - full) / np.linalg.norm(full) < 0.05
    finally:
        for name in ("sdk-t-q", "sdk-t-q8"):
            client.compute.unload(name)


def test_bad_training_requests_raise_core_exceptions(client):
    _register(client, "sdk-t-bad", 15)
    x, y = _task(16, seed=5)
    with pytest.raises(InvalidInputData) as mismatch:
        client.compute.train("sdk-t-bad", x, y[:-1])
    assert mismatch.value.http_status == 400  # type: ignore[attr-defined]
    assert "labels" in mismatch.value.message

    with pytest.raises(InvalidRequest) as optimizer:
        client.compute.train("sdk-t-bad", x, y, optimizer="lbfgs")
    assert optimizer.value.details["field"] == "optimizer"
    with pytest.raises(InvalidRequest) as loss:
        client.compute.train_async("sdk-t-bad", x, y, loss_function="hinge")
    assert loss.value.details["field"] == "loss_function"
    with pytest.raises(InvalidRequest):
        client.compute.optimize("sdk-t-bad", "int4")
    with pytest.raises(ModelNotFound):
        client.compute.train("sdk-t-nobody", x, y)
    assert client.models.get("sdk-t-bad")["version"] == 1  # nothing was trained


def test_a_training_longer_than_the_clients_timeout_is_waited_for(client, live_env):
    """`train` waits for the server's answer, not the client's read timeout: a client of 0.2 s
    gets the result of a longer training, and the server's own 504 once the body's `timeout`
    passes (instead of a NetworkError while the training goes on)."""
    # Wide layers: the time goes to arithmetic (50 steps of ~8 ms on an idle core), not overheads.
    client.models.register("sdk-t-long", "builtin://mlp?in=256&hidden=1024,1024&out=4&seed=16")
    x = np.random.default_rng(6).normal(size=(640, 256)).astype(np.float32)
    y = x[:, :4].argmax(axis=1)
    with GswarmClient(timeout=0.2) as short:
        started = time.monotonic()
        result = short.compute.train("sdk-t-long", x, y, epochs=5, batch_size=64)
        assert time.monotonic() - started > 0.2  # it outlasted the client's timeout
        assert result["epochs_completed"] == 5 and result["version"] == 2
        with pytest.raises(RequestTimeout) as late:
            short.compute.train("sdk-t-long", x, y, epochs=100, batch_size=64, timeout=0.6)
    assert late.value.details["timeout"] == 0.6
    assert client.models.get("sdk-t-long")["version"] == 2  # the cut training wrote nothing
