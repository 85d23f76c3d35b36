"""The tornado rules: a request declaring no body reaches its handler's twin that does not stream;
one carrying a body (or saying it might) always reaches the streaming handler itself."""

from __future__ import annotations

import pytest
from tornado.httputil import HTTPHeaders, HTTPServerRequest
from tornado.web import Application

from gswarm_jupyter.server.dispatch import tornado_rules
from gswarm_jupyter.server.handlers import tornado_handlers
from gswarm_jupyter.server.handlers.system import HealthHandler


def served_by(app: Application, method: str, uri: str, headers: dict[str, str]) -> type:
    request = HTTPServerRequest(method=method, uri=uri, headers=HTTPHeaders(headers))
    return app.find_handler(request).handler_class  # type: ignore[attr-defined,no-any-return]


@pytest.fixture(scope="module")
def app() -> Application:
    app = Application()
    app.add_handlers(".*$", tornado_rules(tornado_handlers(), "/base/"))
    return app


def test_bodiless_request_skips_the_stream(app: Application) -> None:
    handler = served_by(app, "GET", "/base/gswarm/api/v1/health", {"Authorization": "token x"})
    assert issubclass(handler, HealthHandler) and handler is not HealthHandler
    assert handler.__name__ == "HealthHandler"
    assert handler._stream_request_body is False
    assert HealthHandler._stream_request_body is True


@pytest.mark.parametrize("header", [
    {"Content-Length": "3"}, {"Transfer-Encoding": "chunked"}, {"Content-Type": "application/json"},
])
def test_a_body_is_streamed(app: Application, header: dict[str, str]) -> None:
    assert served_by(app, "GET", "/base/gswarm/api/v1/health", header) is HealthHandler


def test_order_and_fallthrough_kept(app: Application) -> None:
    """The catch-all NOT_FOUND stays last for both kinds of request."""
    for headers in ({}, {"Content-Length": "2"}):
        assert served_by(app, "GET", "/base/gswarm/no/such", headers).__name__ == "NotFoundHandler"
        assert served_by(app, "GET", "/base/gswarm/api/v1/health", headers).__name__ == "HealthHandler"
