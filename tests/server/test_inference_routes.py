"""Compute plane: load, infer (torch and JAX alike), batching, sessions, async and batch routes,
bad input. Workers are threads here; the killed-replica test uses processes."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

MLP = "builtin://mlp?in=8&hidden=16&out=4&seed=3"
GPT = "builtin://gpt?vocab=32&d_model=16&layers=1&heads=2&context=16&seed=1"
C = "gswarm/compute/v1"

ROWS = np.random.default_rng(0).standard_normal((3, 8)).round(4).tolist()


async def load(api, model_id, path=MLP, **extra):
    status, env, _ = await api("POST", f"{C}/models", body={"model_id": model_id, "model_path": path, **extra})
    assert status == 201, env
    return env["data"]


async def infer(api, model_id, rows, **extra):
    return await api("POST", f"{C}/inference", body={"model_id": model_id, "input_data": rows, **extra})


async def test_load_infer_unload_mlp(api):
    data = await load(api, "m1")
    assert data["model_id"] == "m1" and data["memory_allocated"] > 0 and data["load_time"] > 0
    status, env, _ = await infer(api, "m1", ROWS)
    assert status == 200, env
    out = env["data"]
    assert np.asarray(out["output_data"]).shape == (3, 4)
    assert out["inference_time"] > 0 and out["memory_used"] > 0 and out["node"]
    assert out["request_id"].startswith("req_")

    status, env, _ = await api("GET", f"{C}/models")
    assert [m["model_id"] for m in env["data"]["models"]] == ["m1"]
    assert env["data"]["models"][0]["model_type"] == "mlp"

    status, env, _ = await api("POST", f"{C}/models", body={"model_id": "m1", "model_path": MLP})
    assert (status, env["error"]["code"]) == (409, "MODEL_ALREADY_LOADED")

    status, env, _ = await api("DELETE", f"{C}/models/m1")
    assert status == 200 and env["data"]["status"] == "unloaded" and env["data"]["memory_freed"] > 0
    status, env, _ = await infer(api, "m1", ROWS)
    assert (status, env["error"]["code"]) == (404, "MODEL_NOT_FOUND")


async def test_torch_and_jax_answer_alike_on_the_same_weights(api):
    await load(api, "mt", MLP, framework="torch")
    await load(api, "mj", MLP, framework="jax")
    _, a, _ = await infer(api, "mt", ROWS)
    _, b, _ = await infer(api, "mj", ROWS)
    np.testing.assert_allclose(a["data"]["output_data"], b["data"]["output_data"], atol=1e-5)

    await load(api, "gt", GPT, framework="torch")
    await load(api, "gj", GPT, framework="jax")
    prompts = [[1, 2, 3], [4, 5]]
    greedy = {"max_tokens": 6, "temperature": 0}
    _, a, _ = await infer(api, "gt", prompts, options=greedy)
    _, b, _ = await infer(api, "gj", prompts, options=greedy)
    assert a["data"]["output_data"] == b["data"]["output_data"]
    assert [len(r) for r in a["data"]["output_data"]] == [6, 6]
    assert a["data"]["tokens_generated"] == 12

    sampled = {"max_tokens": 8, "temperature": 1.0, "top_p": 0.9, "seed": 7}
    _, s1, _ = await infer(api, "gt", prompts, options=sampled)
    _, s2, _ = await infer(api, "gt", prompts, options=sampled)
    assert s1["data"]["output_data"] == s2["data"]["output_data"]
    assert all(0 <= t < 32 for row in s1["data"]["output_data"] for t in row)


async def test_services_on_two_nodes_round_robin_status_and_delete(api, gswarm_app):
    stored = gswarm_app.context.services.services.store  # what a restarted server brings back
    await load(api, "s2")
    await api("DELETE", f"{C}/models/s2")  # the registry entry stays
    body = {"model_name": "s2", "nodes": ["node1", "node2"],
            "config": {"max_batch_size": 4, "load_balancing": "round_robin"}}
    status, env, headers = await api("POST", "gswarm/api/v1/services", body=body)
    assert status == 201, env
    service = env["data"]
    sid = service["service_id"]
    assert sid.startswith("s2-node1-dram-") and headers["Location"].endswith(f"/services/{sid}")
    assert [(r["node"], r["status"]) for r in service["replicas"]] == [("node1", "running"), ("node2", "running")]
    assert service["url"].endswith("gswarm/compute/v1/inference") and service["reason"] is None
    [row] = [r for r in stored.all() if r.service_id == sid]
    assert [(r.node, r.device) for r in row.replicas] == [("node1", "dram"), ("node2", "dram")]
    assert row.nodes == ["node1", "node2"] and row.config["max_batch_size"] == 4

    nodes = set()
    for _ in range(4):
        status, env, _ = await infer(api, "s2", ROWS[:1])
        assert status == 200, env
        nodes.add(env["data"]["node"])
    assert nodes == {"node1", "node2"}

    _, env, _ = await api("GET", "gswarm/api/v1/services")
    assert [s["service_id"] for s in env["data"]["services"]] == [sid]
    _, env, _ = await api("GET", f"gswarm/api/v1/services/{sid}/status")
    st = env["data"]
    assert st["status"] == "running" and st["requests_served"] == 4 and st["queue_depth"] == 0
    assert st["latency_p50"] > 0 and sum(st["batch_size_histogram"].values()) == 4

    status, env, _ = await api("DELETE", f"gswarm/api/v1/services/{sid}")
    assert status == 200 and env["data"]["status"] == "stopped" and env["data"]["memory_freed"] > 0
    status, env, _ = await api("GET", f"gswarm/api/v1/services/{sid}")
    assert (status, env["error"]["code"]) == (404, "NOT_FOUND")
    assert sid not in {r.service_id for r in stored.all()}  # a stopped service stays stopped
    _, env, _ = await api("GET", f"{C}/models")
    assert env["data"]["models"] == []


async def test_concurrent_requests_form_batches_and_long_requests_are_split(api):
    await load(api, "b1", max_batch_size=8, batch_timeout_ms=300)
    results = await asyncio.gather(*(infer(api, "b1", [row]) for row in ROWS * 4))
    assert all(status == 200 for status, _, _ in results)
    many = np.random.default_rng(1).standard_normal((20, 8)).tolist()
    status, env, _ = await infer(api, "b1", many)
    assert status == 200 and len(env["data"]["output_data"]) == 20

    _, env, _ = await api("GET", f"{C}/models")
    sid = env["data"]["models"][0]["services"][0]
    _, env, _ = await api("GET", f"gswarm/api/v1/services/{sid}/status")
    histogram = {int(k): v for k, v in env["data"]["batch_size_histogram"].items()}
    assert max(histogram) <= 8
    assert any(size > 1 for size in histogram), histogram  # single-row requests shared batches
    assert sum(size * n for size, n in histogram.items()) == 12 + 20
    assert env["data"]["requests_served"] == 13


async def test_sessions_stick_to_one_replica_pin_the_model_and_expire(api):
    await load(api, "ss", nodes=["node1", "node2"])
    status, env, _ = await api("POST", f"{C}/sessions", body={"user_id": "ada", "model_id": "ss"})
    assert status == 201, env
    session = env["data"]
    assert session["expires_at"] > session["created_at"]
    replicas = set()
    for _ in range(4):
        _, env, _ = await infer(api, "ss", ROWS[:1], session_id=session["session_id"])
        replicas.add(env["data"]["replica_id"])
    assert len(replicas) == 1

    status, env, _ = await api("DELETE", f"{C}/models/ss")
    assert (status, env["error"]["code"]) == (409, "CONFLICT")

    status, env, _ = await api("DELETE", f"{C}/sessions/{session['session_id']}")
    assert status == 200
    status, env, _ = await api("DELETE", f"{C}/sessions/{session['session_id']}")
    assert (status, env["error"]["code"]) == (404, "NOT_FOUND")

    _, env, _ = await api("POST", f"{C}/sessions", body={"user_id": "ada", "model_id": "ss", "ttl_seconds": 0.3})
    short = env["data"]["session_id"]
    await asyncio.sleep(0.6)
    status, env, _ = await infer(api, "ss", ROWS[:1], session_id=short)
    assert (status, env["error"]["code"]) == (404, "NOT_FOUND")
    status, env, _ = await api("DELETE", f"{C}/models/ss")  # an expired session pins nothing
    assert status == 200, env


async def test_async_inference_through_the_task_queue(api):
    await load(api, "a1")
    status, env, _ = await api("POST", f"{C}/inference/async", body={"model_id": "a1", "input_data": ROWS})
    assert status == 202, env
    accepted = env["data"]
    assert accepted["status"] == "queued" and accepted["request_id"].startswith("req_")
    for _ in range(200):
        _, env, _ = await api("GET", f"{C}/inference/{accepted['request_id']}")
        if env["data"]["status"] in ("completed", "failed"):
            break
        await asyncio.sleep(0.05)
    done = env["data"]
    assert done["status"] == "completed", done
    _, sync, _ = await infer(api, "a1", ROWS)
    assert done["output_data"] == sync["data"]["output_data"]
    assert done["inference_time"] > 0 and done["completion_time"].endswith("Z")
    _, env, _ = await api("GET", f"gswarm/api/v1/queue/tasks/{accepted['task_id']}")
    assert env["data"]["task_type"] == "inference"

    bad = {"model_id": "a1", "input_data": [[1.0, 2.0]]}
    _, env, _ = await api("POST", f"{C}/inference/async", body=bad)
    for _ in range(200):
        _, got, _ = await api("GET", f"{C}/inference/{env['data']['request_id']}")
        if got["data"]["status"] in ("completed", "failed"):
            break
        await asyncio.sleep(0.05)
    assert got["data"]["status"] == "failed" and got["data"]["error"]["code"] == "INVALID_INPUT_DATA"

    status, env, _ = await api("GET", f"{C}/inference/req_nope")
    assert (status, env["error"]["code"]) == (404, "NOT_FOUND")
    status, env, _ = await api("POST", f"{C}/inference/async", body={"model_id": "nope", "input_data": ROWS})
    assert (status, env["error"]["code"]) == (404, "MODEL_NOT_FOUND")


async def test_batch_route_each_request_on_its_own(api):
    await load(api, "bt")
    body = {"requests": [
        {"model_id": "bt", "input_data": ROWS},
        {"model_id": "bt", "input_data": [[1.0] * 5]},
        {"model_id": "nope", "input_data": ROWS},
        {"model_id": "bt"},
    ]}
    status, env, _ = await api("POST", f"{C}/inference/batch", body=body)
    assert status == 200, env
    results = env["data"]["results"]
    assert [r["error"] is None for r in results] == [True, False, False, False]
    assert len(results[0]["output_data"]) == 3 and results[0]["request_id"].startswith("req_")
    assert results[0]["node"] and results[0]["service_id"]
    assert all("output_data" not in r and "result" not in r for r in results[1:])
    assert [r["error"]["code"] for r in results[1:]] == ["INVALID_INPUT_DATA", "MODEL_NOT_FOUND", "INVALID_REQUEST"]
    assert env["data"]["succeeded"] == 1 and env["data"]["total_time"] > 0


@pytest.mark.parametrize(
    ("rows", "expected", "got"),
    [
        ([[1.0, 2.0, 3.0]], "shape (rows, 8)", "(1, 3)"),
        ([[1.0] * 8, [1.0] * 7], "rows of 8 numbers", "ragged or non-numeric rows"),
        ("text", "rows of 8 numbers", "ragged or non-numeric rows"),
    ],
)
async def test_malformed_input_data_is_invalid_input_data_with_expected_vs_got(api, rows, expected, got):
    await load(api, "bad")
    status, env, _ = await infer(api, "bad", rows)
    assert (status, env["error"]["code"]) == (400, "INVALID_INPUT_DATA")
    details = env["error"]["details"]
    assert (details["field"], details["expected"], details["got"]) == ("input_data", expected, got)


async def test_bad_requests(api):
    await load(api, "g", GPT)
    status, env, _ = await infer(api, "g", [[1, 99]], options={"max_tokens": 2})
    assert (status, env["error"]["code"]) == (400, "INVALID_INPUT_DATA")
    assert env["error"]["details"]["got"] == "99"
    status, env, _ = await infer(api, "nope", ROWS)
    assert (status, env["error"]["code"]) == (404, "MODEL_NOT_FOUND")
    status, env, _ = await infer(api, "g", [[1, 2]], options={"max_tokens": 50}, timeout=1e-6)
    assert (status, env["error"]["code"]) == (504, "REQUEST_TIMEOUT")
    for method, path in [("GET", "svc-x"), ("GET", "svc-x/status"), ("DELETE", "svc-x")]:
        status, env, _ = await api(method, f"gswarm/api/v1/services/{path}")
        assert (status, env["error"]["code"]) == (404, "NOT_FOUND")
    status, env, _ = await api("POST", "gswarm/api/v1/services", body={"model_name": "unknown"})
    assert (status, env["error"]["code"]) == (404, "MODEL_NOT_FOUND")
    status, env, _ = await api("POST", "gswarm/api/v1/services", body={"model_name": "g", "nodes": ["node9"]})
    assert (status, env["error"]["code"]) == (404, "NOT_FOUND")
    status, env, _ = await api("POST", "gswarm/api/v1/services", body={"model_name": "g", "device": "node1:gpu3"})
    assert (status, env["error"]["code"]) == (404, "NOT_FOUND")
    status, env, _ = await api("POST", "gswarm/api/v1/services", body={"model_name": "g", "device": "node1:disk"})
    assert (status, env["error"]["code"]) == (400, "INVALID_REQUEST")
    status, env, _ = await api("POST", "gswarm/api/v1/services", body={"model_name": "g", "config": {"framework": "mxnet"}})
    assert (status, env["error"]["code"]) == (400, "INVALID_REQUEST")
    status, env, _ = await api("POST", f"{C}/models", body={"model_id": "x", "model_path": "ftp://x"})
    assert (status, env["error"]["code"]) == (400, "INVALID_REQUEST")
    status, env, _ = await api("POST", f"{C}/models", body={"model_id": "x", "model_path": "file:///etc/passwd"})
    assert (status, env["error"]["code"]) == (403, "FORBIDDEN")
    status, env, _ = await api("POST", f"{C}/sessions", body={"user_id": "u", "model_id": "nope"})
    assert (status, env["error"]["code"]) == (404, "MODEL_NOT_FOUND")


async def test_outputs_json_cannot_name_are_null(api):
    """Rows near float32's limit overflow the forward pass: the infinities and NaNs it makes are
    written as null (the api fixture parses every answer as strict JSON), finite outputs as they
    are."""
    await load(api, "big")
    rows = [[3e38] * 8, ROWS[0]]
    status, env, _ = await infer(api, "big", rows)
    assert status == 200, env
    overflowed, finite = env["data"]["output_data"]
    assert None in overflowed
    assert all(isinstance(v, float) for v in finite)


async def test_metrics_count_real_requests(api):
    await load(api, "mm")
    for _ in range(3):
        await infer(api, "mm", ROWS)
    await infer(api, "mm", [[0.0]])
    status, env, _ = await api("GET", f"{C}/metrics")
    assert status == 200
    m = env["data"]["metrics"]
    assert (m["total_requests"], m["successful_requests"], m["failed_requests"]) == (4, 3, 1)
    assert m["throughput"] > 0 and m["latency"] > 0 and m["active_requests"] == 0
    assert m["gpu_utilization"] is None and m["temperature"] is None and m["power_usage"] is None
    assert 0 < m["memory_utilization"] <= 1
    status, env, _ = await api("GET", f"{C}/metrics/history", params={"interval": 30})
    assert status == 200
    buckets = env["data"]["buckets"]
    assert len(buckets) == 120 and sum(b["requests"] for b in buckets) == 4
    status, env, _ = await api("GET", f"{C}/metrics/history", params={"start_time": "yesterday"})
    assert (status, env["error"]["code"]) == (400, "INVALID_REQUEST")


async def test_a_replica_whose_node_stays_away_loads_again_on_another_node(api, gswarm_app):
    ctx = gswarm_app.context
    ctx.services.keeper.elsewhere_after = 0.5  # instead of waiting out the default grace period
    status, env, _ = await api("POST", "gswarm/api/v1/models", body={
        "model_name": "mover", "source_url": MLP, "download_to": "node2:disk"})
    assert status == 201, env
    loaded = await load(api, "mover")  # no nodes named: the first online node, node1
    sid = loaded["service_id"]
    assert [r["node"] for r in loaded["replicas"]] == ["node1"]

    await ctx.runtime.cluster.workers["node1"].close()  # gone, and nothing brings it back

    for _ in range(300):
        _, env, _ = await api("GET", f"gswarm/api/v1/services/{sid}")
        if env["data"]["replicas"][0]["node"] == "node2" and env["data"]["status"] == "running":
            break
        await asyncio.sleep(0.2)
    replica = env["data"]["replicas"][0]
    assert (env["data"]["status"], replica["node"], replica["status"]) == ("running", "node2", "running")
    status, env, _ = await infer(api, "mover", ROWS)
    assert status == 200 and env["data"]["node"] == "node2", env
    [row] = [r for r in ctx.services.services.store.all() if r.service_id == sid]
    assert [(r.node, r.device) for r in row.replicas] == [("node2", "dram")]  # kept for a restart
