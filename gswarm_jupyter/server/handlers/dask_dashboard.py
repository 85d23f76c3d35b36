"""The embedded Dask dashboard behind the server's own authentication: `{base_url}gswarm/dask/...`
passes GETs and the Bokeh WebSocket on to the scheduler's unix socket (no TCP port anywhere), at
the scheduler's HTTP prefix (`ClusterConfig.dashboard_prefix`).

Invariant: a request reaches the socket only after `GswarmHandler`/`GswarmSocket` has let it read
resource `cluster`; the caller's credentials (Authorization, Cookie) never go on to Dask, and no
hop-by-hop header crosses the proxy in either direction. Dask's pages name their other pages and
their WebSocket relatively; Bokeh's script tags name the scheduler's prefix, which an HTML page
gets back as the server's (`served_html`).
"""

from __future__ import annotations

import socket
from typing import Any

from jupyter_server.utils import url_path_join
from tornado import httpclient, web, websocket
from tornado.httputil import HTTPHeaders
from tornado.netutil import Resolver
from tornado.simple_httpclient import SimpleAsyncHTTPClient

from ...core.errors import GswarmError, NotFound, ResourceUnavailable
from ..base import GswarmHandler
from ..websocket import GswarmSocket

PREFIX = "/gswarm/dask/"
STATUS_PATH = "gswarm/dask/status"  # relative to the server's URL
UPSTREAM_HOST = "dask-scheduler"  # a name only `UnixResolver` resolves
_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "content-length", "host",
})
_CREDENTIALS = frozenset({"authorization", "cookie", "x-xsrftoken", "set-cookie"})
_NOT_FORWARDED = _HOP_BY_HOP | _CREDENTIALS | {"accept-encoding", "origin", "server", "date"}
_MAX_BODY = 64 * 1024 * 1024


class UnixResolver(Resolver):
    """Resolves every name to one unix socket: tornado's clients then connect over AF_UNIX."""

    def initialize(self, path: str) -> None:  # type: ignore[override]
        self.path = path

    async def resolve(self, host: str, port: int,
                      family: socket.AddressFamily = socket.AF_UNSPEC) -> list[tuple[int, Any]]:
        return [(socket.AF_UNIX, self.path)]


def forwarded_headers(headers: HTTPHeaders) -> HTTPHeaders:
    """`headers` without hop-by-hop ones, credentials, compression or origin."""
    kept = HTTPHeaders()
    for name, value in headers.get_all():
        if name.lower() not in _NOT_FORWARDED:
            kept.add(name, value)
    return kept


def served_prefix(base_url: str) -> str:
    """Where this server passes the dashboard on: `{base_url}gswarm/dask/`."""
    return url_path_join(base_url, PREFIX)


def dashboard_path(runtime: Any) -> str | None:
    """The dashboard's page relative to the server's URL, or None when there is none."""
    return STATUS_PATH if runtime.dashboard_socket is not None else None


def upstream_path(request_path: str, served: str, upstream: str) -> str:
    """The scheduler's path for a request to `served...`: the same rest under `upstream`."""
    return upstream + request_path[len(served):]


def served_html(body: bytes, upstream: str, served: str) -> bytes:
    """An HTML page whose attributes name `upstream...` as naming `served...` instead."""
    if upstream == served:
        return body
    return body.replace(f'="{upstream}'.encode(), f'="{served}'.encode())


class DashboardProxy:
    """What both handlers share: the scheduler's socket (or a refusal), its URL for a request."""

    gswarm: Any
    base_url: str
    request: Any

    def dashboard_socket(self) -> str:
        socket_path = self.gswarm.runtime.dashboard_socket
        if socket_path is None:
            raise NotFound("no Dask dashboard here: only the embedded cluster has one (with bokeh)")
        return str(socket_path)

    @property
    def upstream_prefix(self) -> str:
        return str(self.gswarm.runtime.config.dashboard_prefix)

    def upstream_url(self, scheme: str) -> str:
        path = upstream_path(self.request.path, served_prefix(self.base_url), self.upstream_prefix)
        query = f"?{self.request.query}" if self.request.query else ""
        return f"{scheme}://{UPSTREAM_HOST}{path}{query}"


class DaskDashboardHandler(DashboardProxy, GswarmHandler):
    """The dashboard's pages, scripts and JSON, read through the server."""

    @property
    def content_security_policy(self) -> str:
        """Jupyter's page policy, not the API's `default-src 'none'`: the pages run Bokeh's scripts."""
        return "frame-ancestors 'self'"

    async def get(self, path: str = "") -> None:
        client = SimpleAsyncHTTPClient(
            force_instance=True, resolver=UnixResolver(path=self.dashboard_socket()),
            max_body_size=_MAX_BODY,
        )
        try:
            answer = await client.fetch(
                self.upstream_url("http"), headers=forwarded_headers(self.request.headers),
                follow_redirects=False, decompress_response=False, raise_error=False,
                request_timeout=60,
            )
        finally:
            client.close()
        if answer.code == 599:
            raise ResourceUnavailable(f"the Dask dashboard does not answer: {answer.error}")
        self.set_status(answer.code, answer.reason)
        served = served_prefix(self.base_url)
        for name, value in answer.headers.get_all():
            if name.lower() == "location" and value.startswith(self.upstream_prefix):
                value = upstream_path(value, self.upstream_prefix, served)
            if name.lower() not in _NOT_FORWARDED | {"content-type"}:
                self.add_header(name, value)
        content_type = answer.headers.get("Content-Type", "application/octet-stream")
        body = answer.body or b""
        if content_type.startswith("text/html"):
            body = served_html(body, self.upstream_prefix, served)
        self.finish(body, set_content_type=content_type)


class DaskDashboardSocket(DashboardProxy, GswarmSocket):
    """The Bokeh WebSocket of a dashboard page, relayed message for message."""

    _upstream: websocket.WebSocketClientConnection | None = None
    _protocols: list[str] | None = None
    _socket: str = ""

    async def prepare(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Credentials first, then whether there is a dashboard: both before the upgrade."""
        await super().prepare(*args, **kwargs)
        try:
            self._socket = self.dashboard_socket()
        except GswarmError as exc:
            raise web.HTTPError(exc.status, "%s", exc.message) from None

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        """Bokeh's client sends `["bokeh", <session token>]`; the scheduler checks both."""
        self._protocols = list(subprotocols)
        return subprotocols[0] if subprotocols else None

    async def open(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().open(*args, **kwargs)
        try:
            # No header of the browser's handshake goes on: tornado makes the scheduler's own.
            request = httpclient.HTTPRequest(self.upstream_url("ws"), connect_timeout=10)
            self._upstream = await websocket.websocket_connect(
                request, resolver=UnixResolver(path=self._socket),
                subprotocols=self._protocols, on_message_callback=self._from_dask,
                max_message_size=_MAX_BODY,
            )
        except (OSError, httpclient.HTTPClientError) as exc:
            self.close(1011, f"the Dask dashboard does not answer: {exc}"[:120])
            return
        if self.ws_connection is None or self.ws_connection.is_closing():
            self._close_upstream()  # the browser left while the scheduler was answering

    def _from_dask(self, message: str | bytes | None) -> None:
        if message is None:
            self.close()
            return
        try:
            self.write_message(message, binary=isinstance(message, bytes))
        except websocket.WebSocketClosedError:
            self._close_upstream()

    def on_message(self, message: str | bytes) -> None:
        if self._upstream is not None:
            self._upstream.write_message(message, binary=isinstance(message, bytes))

    def on_connection_close(self) -> None:
        self._close_upstream()
        super().on_connection_close()

    def _close_upstream(self) -> None:
        upstream, self._upstream = self._upstream, None
        if upstream is not None:
            upstream.close()


def tornado_handlers() -> list[tuple[str, type, dict[str, Any]]]:
    """The proxy's entries, the WebSocket (a path ending in `/ws`) before the pages."""
    return [
        (rf"{PREFIX}(?P<path>.*/ws)", DaskDashboardSocket, {}),
        (rf"{PREFIX}(?P<path>.*)", DaskDashboardHandler, {}),
    ]
