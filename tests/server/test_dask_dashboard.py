"""The embedded Dask dashboard through the server: `gswarm/dask/...` behind the server's own
authentication, passed on to the scheduler's unix socket; no TCP port of its own."""

from __future__ import annotations

import json
import re
import socket
import stat
from pathlib import Path

import psutil
import pytest
from tornado.httpclient import HTTPClientError

DASK = "gswarm/dask"


def listening_tcp_ports() -> set[int]:
    return {
        c.laddr.port for c in psutil.Process().net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }


def http_socket_families(gswarm_app) -> set[int]:
    """The address families the embedded scheduler's HTTP server listens on."""
    scheduler = gswarm_app.context.runtime.cluster.scheduler
    return {sock.family for sock in scheduler.http_server._sockets.values()}


def session_token(page: str) -> str:
    """The Bokeh session token a dashboard page gives its WebSocket."""
    match = re.search(r'"token":"([^"]+)"', page) or re.search(r'token&quot;:&quot;([^&]+)', page)
    assert match, page[:2000]
    return match.group(1)


async def test_health_says_where_the_dashboard_is(api):
    code, env, _ = await api("GET", "gswarm/api/v1/health")
    assert code == 200
    assert env["data"]["scheduler"]["dashboard_path"] == "gswarm/dask/status"


async def page_and_script(api, base_url: str) -> None:
    """The status page through the server, and Bokeh's script it names, fetched at that name."""
    code, env, headers = await api("GET", f"{DASK}/status")
    assert code == 200, env
    assert headers["Content-Type"].startswith("text/html")
    page = env["text"]
    assert "bokeh" in page.lower()
    scripts = re.findall(r'src="([^"]*static/js/bokeh[^"]*\.js)[^"]*"', page)
    assert scripts and all(s.startswith(f"{base_url}{DASK}/static/") for s in scripts), scripts
    code, env, headers = await api("GET", scripts[0][len(base_url):])
    assert code == 200
    assert "javascript" in headers["Content-Type"]
    assert "Bokeh" in env["text"]


async def test_dashboard_page_and_its_scripts_through_the_server(api, gswarm_app, jp_base_url):
    assert jp_base_url != "/"  # pytest-jupyter's: the pages must name the server's prefix
    before = listening_tcp_ports()
    await page_and_script(api, jp_base_url)
    assert listening_tcp_ports() == before
    assert http_socket_families(gswarm_app) == {socket.AF_UNIX}


class TestAtTheRootUrl:
    @pytest.fixture
    def jp_base_url(self):
        return "/"

    async def test_dashboard_page_and_its_scripts(self, api):
        await page_and_script(api, "/")


async def test_dashboard_needs_credentials(api):
    code, env, _ = await api("GET", f"{DASK}/status", token=False)
    assert code == 401
    assert env["error"]["code"] == "UNAUTHORIZED"


async def test_dask_open_proxy_is_not_served(api):
    code, _, _ = await api("GET", f"{DASK}/proxy/8786/127.0.0.1/status")
    assert code == 404


async def test_scheduler_socket_is_private(gswarm_app):
    sock = Path(gswarm_app.context.runtime.dashboard_socket)
    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(sock.stat().st_mode) & 0o077 == 0


async def test_bokeh_websocket_through_the_server(api, jp_ws_fetch):
    code, env, _ = await api("GET", f"{DASK}/status")
    assert code == 200
    token = session_token(env["text"])
    ws = await jp_ws_fetch(*f"{DASK}/status/ws".split("/"), subprotocols=["bokeh", token])
    try:
        assert ws.selected_subprotocol == "bokeh"
        first = await ws.read_message()
        assert first is not None  # Bokeh's first message: its ACK
        header = json.loads(first)
        assert header["msgtype"] == "ACK"
    finally:
        ws.close()


async def test_bokeh_websocket_needs_credentials(jp_ws_fetch, gswarm_app):
    with pytest.raises(HTTPClientError) as exc:
        await jp_ws_fetch(*f"{DASK}/status/ws".split("/"), headers={"Authorization": ""},
                          subprotocols=["bokeh", "x"])
    assert exc.value.code == 401


def test_the_cluster_opens_no_tcp_port_beyond_its_comms(jp_serverapp, request):
    before = listening_tcp_ports()
    gswarm_app = request.getfixturevalue("gswarm_app")
    runtime = gswarm_app.context.runtime
    comms = [runtime.scheduler_address, *runtime.client.scheduler_info()["workers"]]
    expected = {int(a.rsplit(":", 1)[1]) for a in comms} | {gswarm_app.context.profiler_grpc.port}
    assert listening_tcp_ports() - before == expected
