"""The SDK against a real server process: discovery, the API, and errors as `core` exceptions."""

from __future__ import annotations

import json
import os

import pytest

from gswarm_jupyter.client import AsyncGswarmClient, GswarmClient, discover
from gswarm_jupyter.core.errors import NetworkError, NotFound, ResourceUnavailable, Unauthorized
from gswarm_jupyter.testing import free_port


def test_the_sync_client_reads_health_and_nodes(live_env):
    with GswarmClient() as client:
        assert client.health()["status"] == "healthy"
        assert [n["node_id"] for n in client.nodes()] == ["node1", "node2"]
        assert client.node("node1")["devices"]["dram"]["total"] > 0
        assert set(client.node_resources("node2")["storage"]) >= {"disk", "dram"}
        assert client.compute_health()["gpu_status"] == "unavailable"
        assert "/gswarm/api/v1/health" in client.openapi()["paths"]


def test_api_errors_come_back_as_the_exceptions_the_server_raised(live_env):
    with GswarmClient() as client, pytest.raises(NotFound) as info:
        client.node("node42")
    assert info.value.code == "NOT_FOUND" and info.value.details == {"node": "node42"}
    assert info.value.http_status == 404


def test_a_wrong_token_is_unauthorized(live_server):
    with GswarmClient(live_server.url, "wrong") as client, pytest.raises(Unauthorized):
        client.health()


def test_an_unreachable_server_is_a_network_error():
    with GswarmClient(f"http://127.0.0.1:{free_port()}/", "t") as client:
        with pytest.raises(NetworkError):
            client.health()


async def test_the_async_client_has_the_same_api(live_env):
    async with AsyncGswarmClient() as client:
        health = await client.health()
        assert health["nodes_online"] == 2
        with pytest.raises(NotFound):
            await client.node("node42")


def test_discovery_prefers_arguments_then_environment(monkeypatch):
    monkeypatch.setenv("GSWARM_URL", "http://env:1/")
    monkeypatch.setenv("GSWARM_TOKEN", "envtoken")
    assert discover() == ("http://env:1/", "envtoken")
    assert discover("http://arg:2/", "argtoken") == ("http://arg:2/", "argtoken")


def test_discovery_reads_the_connection_file_of_a_live_server(live_server, monkeypatch):
    monkeypatch.delenv("GSWARM_URL", raising=False)
    monkeypatch.delenv("GSWARM_TOKEN", raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(live_server.runtime_dir))
    url, token = discover()
    assert url.endswith(f":{live_server.port}/") and token == live_server.token
    with GswarmClient() as client:
        assert client.health()["status"] == "healthy"


def test_discovery_ignores_files_of_dead_servers(tmp_path, monkeypatch):
    monkeypatch.delenv("GSWARM_URL", raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    dead_pid = 2**22 + 12345
    (tmp_path / f"gswarm-{dead_pid}.json").write_text(
        json.dumps({"url": "http://x/", "token": "t", "pid": dead_pid})
    )
    assert not os.path.exists(f"/proc/{dead_pid}")
    with pytest.raises(ResourceUnavailable, match="make run"):
        discover()


class TestRateLimited:
    """A refused request (429) is sent again after its Retry-After: callers see answers."""

    @pytest.fixture
    def gswarm_config(self, gswarm_config):
        gswarm_config.update(rate_limit_per_minute=1000, rate_limit_burst=2, rate_limit_owner=True)
        return gswarm_config

    async def test_the_client_waits_out_429_and_retries(
        self, gswarm_app, jp_serverapp, jp_fetch, jp_base_url, jp_http_port
    ):  # jp_fetch: the test server listens on jp_http_port
        url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
        async with AsyncGswarmClient(url, jp_serverapp.identity_provider.token) as client:
            answers = [await client.health() for _ in range(5)]  # 2 a second allowed
        assert [a["status"] for a in answers] == ["healthy"] * 5
        assert gswarm_app.context.requests[429] >= 1  # some were refused, then retried
