"""The SDK's services and compute plane (`client.services`, `client.compute`) against a real server
process with two worker processes: errors arrive as the `core` exceptions the server raised."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from gswarm_kernels import init_params, parse_builtin_url

from gswarm_jupyter.client import AsyncGswarmClient, GswarmClient
from gswarm_jupyter.core.errors import (
    InvalidInputData,
    InvalidRequest,
    ModelAlreadyLoaded,
    ModelNotFound,
    NotFound,
)

MLP = "builtin://mlp?in=8&hidden=16&out=4&seed={seed}"
GPT = "builtin://gpt?vocab=256&d_model=32&layers=1&heads=2&context=64&seed=0"


@pytest.fixture
def client(live_env):
    with GswarmClient() as client:
        yield client


def _direct(url: str, rows: list[list[float]]) -> np.ndarray:
    """The model's forward pass in this process, on the weights the builtin URL names."""
    from gswarm_kernels.torch_infer import predict
    from gswarm_kernels.torch_models import build_module

    spec = parse_builtin_url(url)
    module = build_module(spec.arch, spec.config, init_params(spec.arch, spec.config, spec.seed))
    return predict(module, np.asarray(rows, dtype=np.float32))


def test_load_infer_errors_and_unload(client):
    url = MLP.format(seed=3)
    loaded = client.compute.load("sdk-c-mlp", url)
    try:
        assert loaded["model_id"] == "sdk-c-mlp" and loaded["memory_allocated"] > 0
        assert loaded["load_time"] > 0 and loaded["service_id"]
        assert "sdk-c-mlp" in [m["model_id"] for m in client.compute.loaded()]

        rows = [[0.1 * i + j for i in range(8)] for j in range(3)]
        result = client.compute.infer("sdk-c-mlp", rows)
        assert np.allclose(result["output_data"], _direct(url, rows), atol=1e-5)
        assert result["inference_time"] > 0 and result["service_id"] == loaded["service_id"]
        assert result["node"] in ("node1", "node2")

        with pytest.raises(ModelAlreadyLoaded) as again:
            client.compute.load("sdk-c-mlp", url)
        assert again.value.http_status == 409  # type: ignore[attr-defined]

        with pytest.raises(InvalidInputData) as bad:
            client.compute.infer("sdk-c-mlp", [[1.0] * 7])
        assert bad.value.details["expected"] and bad.value.details["got"]
        with pytest.raises(InvalidInputData):
            client.compute.infer("sdk-c-mlp", [["not", "a", "number"] * 3])
        with pytest.raises(ModelNotFound):
            client.compute.infer("sdk-c-nowhere", rows)
    finally:
        unloaded = client.compute.unload("sdk-c-mlp")
    assert unloaded["status"] == "unloaded" and unloaded["services"] == [loaded["service_id"]]
    assert "sdk-c-mlp" not in [m["model_id"] for m in client.compute.loaded()]
    with pytest.raises(ModelNotFound):
        client.compute.infer("sdk-c-mlp", rows)
    with pytest.raises(ModelNotFound):
        client.compute.unload("sdk-c-mlp")


def test_a_compute_load_registers_the_model_and_unload_keeps_it(client):
    """API.md: the load "registers it if needed"; the unload stops services, "the registry entry
    stays"."""
    client.compute.load("sdk-c-reg", MLP.format(seed=6))
    try:
        record = client.models.get("sdk-c-reg")
        assert record["model_type"] == "mlp" and record["status"] == "ready"
    finally:
        client.compute.unload("sdk-c-reg")
    assert client.models.get("sdk-c-reg")["model_name"] == "sdk-c-reg"
    client.models.delete("sdk-c-reg")


def test_services_start_on_a_node_count_requests_and_stop(client):
    client.compute.load("sdk-c-svc", MLP.format(seed=4), nodes=["node1"])
    try:
        service = client.services.start("sdk-c-svc", nodes=["node2"], device="dram",
                                        config={"max_batch_size": 4, "framework": "torch"})
        sid = service["service_id"]
        assert service["node"] == "node2" and service["device"] == "dram"
        assert service["status"] == "running" and service["config"]["max_batch_size"] == 4
        assert sid in [s["service_id"] for s in client.services.list(model_name="sdk-c-svc")]
        assert client.services.get(sid)["model_name"] == "sdk-c-svc"

        for _ in range(3):
            answer = client.compute.infer("sdk-c-svc", [[1.0] * 8], service_id=sid)
            assert answer["service_id"] == sid and answer["node"] == "node2"
        status = client.services.status(sid)
        assert status["requests_served"] >= 3 and status["latency_p50"] > 0
        assert sum(status["batch_size_histogram"].values()) >= 1

        stopped = client.services.stop(sid)
        assert stopped["status"] == "stopped"
        with pytest.raises(NotFound):
            client.services.status("sdk-c-svc-node9-dram-99")
        with pytest.raises(InvalidRequest):
            client.services.start("sdk-c-svc", config={"framework": "tensorflow"})
    finally:
        client.compute.unload("sdk-c-svc")


def test_generate_async_batch_sessions_and_metrics(client):
    client.compute.load("sdk-c-gpt", GPT)
    try:
        prompt = [list(b"hello")]
        first = client.compute.infer("sdk-c-gpt", prompt, max_tokens=6, seed=7, temperature=0.9)
        again = client.compute.infer("sdk-c-gpt", prompt, max_tokens=6, seed=7, temperature=0.9)
        assert first["tokens_generated"] == 6 and len(first["output_data"][0]) == 6
        assert first["output_data"] == again["output_data"]  # the same seed, the same tokens
        assert all(0 <= t < 256 for t in first["output_data"][0])
        with pytest.raises(InvalidInputData):
            client.compute.infer("sdk-c-gpt", [[300, 1]], max_tokens=2)

        queued = client.compute.infer_async("sdk-c-gpt", prompt, max_tokens=6, seed=7,
                                            temperature=0.9, priority="high")
        assert queued["status"] == "queued"
        deadline = time.monotonic() + 60
        while (state := client.compute.inference(queued["request_id"]))["status"] not in (
                "completed", "failed", "cancelled") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert state["status"] == "completed", state
        assert state["output_data"] == first["output_data"]
        with pytest.raises(NotFound):
            client.compute.inference("req_nothing")

        batch = client.compute.infer_batch([
            {"model_id": "sdk-c-gpt", "input_data": prompt, "options": {"max_tokens": 2}},
            {"model_id": "sdk-c-nowhere", "input_data": prompt},
        ])
        assert [r["error"] is None for r in batch["results"]] == [True, False]
        assert len(batch["results"][0]["output_data"]) == len(prompt)
        assert "output_data" not in batch["results"][1]
        assert batch["results"][1]["error"]["code"] == "MODEL_NOT_FOUND"

        session = client.compute.session_start("ana", "sdk-c-gpt", ttl_seconds=60)
        assert session["user_id"] == "ana" and session["model_id"] == "sdk-c-gpt"
        pinned = client.compute.infer("sdk-c-gpt", prompt, max_tokens=1,
                                      session_id=session["session_id"])
        assert pinned["session_id"] == session["session_id"]
        assert client.compute.session_end(session["session_id"])["session_id"] == \
            session["session_id"]
        with pytest.raises(NotFound):
            client.compute.session_end(session["session_id"])

        metrics = client.compute.metrics()
        assert metrics["total_requests"] >= 5 and metrics["successful_requests"] >= 4
        assert metrics["failed_requests"] >= 1 and metrics["gpu_utilization"] is None
        history = client.compute.metrics_history(interval=3600)
        assert sum(b["requests"] for b in history["buckets"]) >= 5
        assert client.compute.health()["status"] and client.compute_health()["status"]
    finally:
        client.compute.unload("sdk-c-gpt")


def test_async_client_loads_infers_and_unloads(live_env):
    url = MLP.format(seed=5)

    async def main():
        async with AsyncGswarmClient() as client:
            await client.compute.load("sdk-c-async", url, framework="jax", max_batch_size=8)
            try:
                rows = [[0.5] * 8, [-1.0] * 8]
                out = await asyncio.gather(*(client.compute.infer("sdk-c-async", [r])
                                             for r in rows))
                loaded = await client.compute.loaded()
                with pytest.raises(InvalidInputData):
                    await client.compute.infer("sdk-c-async", [[0.5] * 9])
            finally:
                await client.compute.unload("sdk-c-async")
            return rows, out, loaded

    rows, out, loaded = asyncio.run(main())
    assert np.allclose([o["output_data"][0] for o in out], _direct(url, rows), atol=1e-5)
    assert "sdk-c-async" in [m["model_id"] for m in loaded]
