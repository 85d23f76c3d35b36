"""A client that knows only API.md: JSON over HTTP with `Authorization: Bearer <token>`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


def call(server, method, path, body=None):
    request = urllib.request.Request(
        f"{server.url}gswarm/compute/v1/{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_load_infer_and_unload_over_plain_http(live_server):
    status, env = call(live_server, "POST", "models",
                       {"model_id": "plain", "model_path": "builtin://mlp?in=8&hidden=16&out=4"})
    assert status == 201 and env["success"], env
    try:
        status, env = call(live_server, "POST", "inference",
                           {"model_id": "plain", "input_data": [[0.5] * 8, [1.0] * 8]})
        assert status == 200, env
        assert len(env["data"]["output_data"]) == 2 and len(env["data"]["output_data"][0]) == 4
        status, env = call(live_server, "POST", "inference", {"model_id": "plain", "input_data": [[1]]})
        assert (status, env["success"], env["error"]["code"]) == (400, False, "INVALID_INPUT_DATA")
        status, env = call(live_server, "GET", "models")
        assert "plain" in [m["model_id"] for m in env["data"]["models"]]
    finally:
        status, env = call(live_server, "DELETE", "models/plain")
    assert status == 200 and env["data"]["status"] == "unloaded"
