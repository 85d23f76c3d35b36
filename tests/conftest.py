"""Shared fixtures. Plugins are listed here explicitly."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError, HTTPResponse

from gswarm_jupyter.testing import LOOPBACK_ONLY

pytest_plugins = ["pytest_jupyter.jupyter_server"]

# The servers and in-process workers of this session share its large heap: freezing it at each
# start (core.heap) would cost a full collection of it every time (tests/core/test_heap.py and
# tests/server/test_app_heap.py turn it back on).
os.environ["GSWARM_FREEZE_HEAP"] = "0"


@pytest.fixture(autouse=True)
def _scratch_in_tmp(tmp_path, monkeypatch):
    """Dask's scratch space goes into the test's own temporary folder, never /tmp at large."""
    import dask

    scratch = tmp_path / "dask-scratch"
    scratch.mkdir()
    monkeypatch.setenv("DASK_TEMPORARY_DIRECTORY", str(scratch))
    with dask.config.set({"temporary-directory": str(scratch)}):
        yield


@pytest.fixture
def gswarm_config(tmp_path) -> dict[str, Any]:
    """GswarmApp settings for a test server; tests update it before the server starts."""
    return {
        "local_nodes": 2,
        "local_processes": False,
        "data_dir": str(tmp_path / "gswarm-data"),
        # In-process workers measure this test process (grown by torch and JAX models): a small
        # limit gets them paused by Dask, and then no task runs.
        "worker_memory_limit": "8GiB",
        "grpc_port": 0,
        **{k: list(v) for k, v in LOOPBACK_ONLY.items()},  # http(s) sources on loopback only
    }


@pytest.fixture
def jp_server_config(gswarm_config):
    return {
        "ServerApp": {"jpserver_extensions": {"gswarm_jupyter": True}},
        "GswarmApp": gswarm_config,
    }


@pytest.fixture
def gswarm_app(jp_serverapp, jp_asyncio_loop):
    """The started extension, its cluster up and every node reported.

    pytest-jupyter does not run the server's post-start hook; this does what it would.
    """

    async def start():
        await jp_serverapp.extension_manager.start_all_extensions()
        ext = next(iter(jp_serverapp.extension_manager.extension_apps["gswarm_jupyter"]))
        await ext.context.runtime.wait_ready(timeout=120)
        return ext

    return jp_asyncio_loop.run_until_complete(start())


Fetch = Callable[..., Awaitable[tuple[int, dict[str, Any], dict[str, str]]]]


@pytest.fixture
def api(gswarm_app, jp_fetch) -> Fetch:
    """`await api("GET", "gswarm/api/v1/health", body=..., params=..., token=True)` answers
    (status, parsed JSON envelope, headers) whatever the status."""

    async def call(
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        token: bool = True,
        raw_body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        kwargs: dict[str, Any] = {"method": method, "params": params or {}}
        if raw_body is not None:
            kwargs["body"] = raw_body
        elif body is not None:
            kwargs["body"] = json.dumps(body)
        elif method in ("POST", "PUT", "PATCH"):
            kwargs["body"] = b""
        if headers is not None or not token:
            kwargs["headers"] = dict(headers or {})
            if not token:
                kwargs["headers"]["Authorization"] = ""
        try:
            response: HTTPResponse = await jp_fetch(*path.split("/"), **kwargs)
        except HTTPClientError as exc:
            response = exc.response  # type: ignore[assignment]
            assert response is not None, exc
        text = response.body.decode() if response.body else ""
        json_typed = text and "json" in response.headers.get("Content-Type", "")
        parsed = strict_json(text) if json_typed else {"text": text}
        return response.code, parsed, dict(response.headers)

    return call


def strict_json(text: str) -> Any:
    """`text` parsed as strict JSON (RFC 8259): the NaN and Infinity tokens Python's json reads and
    the browser's JSON.parse refuses fail the test."""

    def refuse(token: str) -> None:
        raise AssertionError(f"an answer holds {token}, which is not JSON: {text[:300]}")

    return json.loads(text, parse_constant=refuse)


def pytest_collection_modifyitems(config, items):
    """`gpu` tests run only where a CUDA GPU is."""
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if has_gpu or os.environ.get("GSWARM_GPU_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; none on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """One real `jupyter server` process with the extension (real worker processes), shared by
    the tests of blocking callers: the sync SDK, the magics, the widgets."""
    from gswarm_jupyter.testing import LiveServer

    server = LiveServer(tmp_path_factory.mktemp("live"), nodes=2).start()
    yield server
    server.stop()


@pytest.fixture
def live_env(live_server, monkeypatch):
    """The environment a kernel started by that server would see."""
    monkeypatch.setenv("GSWARM_URL", live_server.url)
    monkeypatch.setenv("GSWARM_TOKEN", live_server.token)
    return live_server
