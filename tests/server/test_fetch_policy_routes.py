"""The fetch policy at the routes: a denied http(s) source is 403 FORBIDDEN before anything is
made, a redirect to a denied address fails the download task with FORBIDDEN and leaves no copy,
credentials in a source URL are never stored, shown or logged, and a download is bounded by the
room of its target. Every source here listens on 127.0.0.1."""

from __future__ import annotations

import json
import logging

import pytest

from ..http_source import Source
from .data_helpers import API, finished
from .model_helpers import MLP, model, register, store_of


@pytest.fixture
def gswarm_config(gswarm_config, request):
    """The test servers' loopback-only policy, or (param "default") the shipped default, or
    (param "small chunks") chunks of 100,000 bytes at most, or (param "small node2") 1000 bytes
    of models on node2's dram."""
    param = getattr(request, "param", "loopback")
    if param == "default":
        del gswarm_config["fetch_allow"], gswarm_config["fetch_deny"]
    if param == "small chunks":
        gswarm_config["max_chunk_bytes"] = 100_000
    if param == "small node2":
        gswarm_config["model_capacity"] = {"node2:dram": 1000}
    return gswarm_config


def forbidden(status: int, env: dict, url: str) -> str:
    assert status == 403, env
    error = env["error"]
    assert error["code"] == "FORBIDDEN"
    assert error["details"]["url"] == url and error["details"]["reason"]
    return error["details"]["reason"]


@pytest.mark.parametrize("gswarm_config", ["default"], indirect=True)
async def test_the_default_policy_refuses_loopback_sources_before_making_anything(api):
    with Source() as src:
        src.files["x"] = b"the server's own secrets"
        url = src.url("x")
        status, env, _ = await api("POST", f"{API}/data", body={"url": url, "device": "node1:dram"})
        assert "loopback" in forbidden(status, env, url)
        status, env, _ = await api("POST", f"{API}/models",
                                   body={"model_name": "web", "source_url": url})
        forbidden(status, env, url)
        await register(api, "local", MLP.format(seed=0))
        status, env, _ = await api("POST", f"{API}/models/local/download",
                                   body={"source_url": url, "target_device": "node2:disk"})
        forbidden(status, env, url)
        assert src.requests == []  # refused before connecting
    status, env, _ = await api("GET", f"{API}/data")
    assert env["data"]["chunks"] == []
    status, env, _ = await api("GET", f"{API}/models/web")
    assert status == 404
    assert [loc["device"] for loc in (await model(api, "local"))["locations"]] == ["node1:disk"]
    status, env, _ = await api("GET", f"{API}/queue/tasks")
    assert env["data"]["tasks"] == []


async def test_test_servers_refuse_host_names_and_other_addresses_without_a_lookup(api):
    for url in ("http://made-up-host.invalid/x", "http://10.0.0.1/x", "http://2852039166/x"):
        status, env, _ = await api("POST", f"{API}/data", body={"url": url, "device": "node1:dram"})
        forbidden(status, env, url)
        status, env, _ = await api("POST", f"{API}/models",
                                   body={"model_name": "m", "source_url": url})
        forbidden(status, env, url)


async def test_a_redirect_to_a_metadata_address_fails_the_download_with_nothing_left(api,
                                                                                     gswarm_app):
    with Source() as src:
        src.redirects["w"] = "http://169.254.169.254/latest/meta-data/"
        status, env, _ = await api("POST", f"{API}/data",
                                   body={"url": src.url("w"), "device": "node1:dram"})
        assert status == 201, env
        chunk_id = env["data"]["chunk_id"]
        task = await finished(api, env["data"]["task_id"])
        assert task["status"] == "failed" and task["error"]["code"] == "FORBIDDEN", task
        assert "metadata" in task["error"]["details"]["reason"]
        status, env, _ = await api("GET", f"{API}/data/{chunk_id}")
        assert env["data"]["locations"] == []

        rec = await register(api, "web", src.url("w"), download_to="node2:disk")
        task = await finished(api, rec["task_id"])
        assert task["status"] == "failed" and task["error"]["code"] == "FORBIDDEN", task
        rec = await model(api, "web")
        assert rec["locations"] == [] and rec["status"] == "failed"
        assert list(store_of(gswarm_app, "node2").rglob("*.part")) == []
        assert [r["path"] for r in src.requests] == ["w", "w"]


async def test_credentials_in_a_source_url_are_never_stored_shown_or_logged(api, gswarm_app,
                                                                             caplog):
    caplog.set_level(logging.DEBUG)
    await register(api, "seed", MLP.format(seed=3))
    payload = (store_of(gswarm_app, "node1") / "seed" / "v1.safetensors").read_bytes()
    seen: list[str] = []

    async def call(method: str, path: str, body=None):  # noqa: ANN001
        status, env, headers = await api(method, path, body=body)
        seen.append(json.dumps(env))
        return status, env

    with Source() as src:
        src.files["w.safetensors"] = payload
        secret = src.base.replace("http://", "http://alice:hunter2@")
        shown = src.base.replace("http://", "http://***@")

        status, env = await call("POST", f"{API}/models",
                                 {"model_name": "web", "source_url": f"{secret}/w.safetensors"})
        assert status == 201 and env["data"]["source_url"] == f"{shown}/w.safetensors"
        assert (await finished(api, env["data"]["task_id"]))["status"] == "completed"
        assert src.requests[-1]["authorization"] is not None  # used for the download itself
        status, env = await call("GET", f"{API}/models/web")
        assert env["data"]["source_url"] == f"{shown}/w.safetensors"
        status, env = await call("POST", f"{API}/models/web/download",
                                 {"target_device": "node2:disk"})
        assert status == 400 and env["error"]["details"]["field"] == "source_url"

        status, env = await call("POST", f"{API}/models",
                                 {"model_name": "gone", "source_url": f"{secret}/missing"})
        task_id = env["data"]["task_id"]
        assert (await finished(api, task_id))["error"]["code"] == "NETWORK_ERROR"
        await call("GET", f"{API}/queue/tasks/{task_id}")
        await call("GET", f"{API}/models/gone")

        status, env = await call("POST", f"{API}/data",
                                 {"url": f"{secret}/missing", "device": "node1:dram"})
        assert (await finished(api, env["data"]["task_id"]))["status"] == "failed"
        await call("GET", f"{API}/queue/tasks/{env['data']['task_id']}")
        await call("GET", f"{API}/data/{env['data']['chunk_id']}")
        await call("GET", f"{API}/queue/history")
        await call("GET", f"{API}/models")

        status, env = await call("POST", f"{API}/data",
                                 {"url": "http://alice:hunter2@10.0.0.1/x", "device": "node1:dram"})
        assert status == 403
    assert all("hunter2" not in text for text in seen)
    assert "***@" in "".join(seen)
    assert "hunter2" not in caplog.text
    rows = gswarm_app.context.db.all("SELECT source_url FROM models", ())
    assert all("hunter2" not in row["source_url"] for row in rows)
    # Finished download tasks keep their params: the url there is redacted too.
    tasks = gswarm_app.context.db.all("SELECT params FROM tasks", ())
    assert tasks and all("hunter2" not in row["params"] for row in tasks)


@pytest.mark.parametrize("gswarm_config", ["small node2"], indirect=True)
async def test_a_model_download_is_bounded_by_the_model_capacity(api, gswarm_app):
    await register(api, "seed", MLP.format(seed=4))
    payload = (store_of(gswarm_app, "node1") / "seed" / "v1.safetensors").read_bytes()
    assert len(payload) > 1000
    with Source() as src:
        src.files["w.safetensors"] = payload
        src.unsized.add("w.safetensors")
        rec = await register(api, "web", src.url("w.safetensors"), download_to="node2:dram")
        task = await finished(api, rec["task_id"])
    assert task["status"] == "failed" and task["error"]["code"] == "INSUFFICIENT_MEMORY", task
    details = task["error"]["details"]
    assert details["device"] == "node2:dram" and details["available"] == 1000
    assert details["required"] > 1000
    assert (await model(api, "web"))["locations"] == []


@pytest.mark.parametrize("gswarm_config", ["small chunks"], indirect=True)
@pytest.mark.parametrize("unsized", [False, True], ids=["declared", "counted"])
async def test_a_chunk_download_over_max_chunk_bytes_is_payload_too_large(api, unsized):
    with Source() as src:
        src.files["big"] = b"x" * 3_000_000
        if unsized:
            src.unsized.add("big")
        status, env, _ = await api("POST", f"{API}/data",
                                   body={"url": src.url("big"), "device": "node1:dram"})
        assert status == 201, env
        task = await finished(api, env["data"]["task_id"])
    assert task["status"] == "failed" and task["error"]["code"] == "PAYLOAD_TOO_LARGE", task
    details = task["error"]["details"]
    assert details["limit"] == 100_000 and 100_000 < details["size"] <= 3_000_000
    status, env, _ = await api("GET", f"{API}/data/{env['data']['chunk_id']}")
    assert env["data"]["locations"] == []
