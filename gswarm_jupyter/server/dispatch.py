"""The tornado rules of gswarm's handlers: a request without a body skips the streamed body.

Invariant: every pattern gets two rules, in the table's order: first for a request that declares
no body (no `Content-Length`, `Transfer-Encoding` or `Content-Type`), served by the handler's
twin that does not stream (`_stream_request_body = False`), then for any request, served by the
handler itself. Both run the same `prepare` and methods, and a request that carries a body always
reaches the streaming handler (nothing read before `prepare` has passed). Tornado streams a
body by resuming the connection and then the handler on two more turns of the event loop; a
bodiless GET has nothing to stream (the health route: 5.8 turns a request streamed, 3.8 not).
"""

from __future__ import annotations

from typing import Any

from jupyter_server.utils import url_path_join
from tornado.httputil import HTTPServerRequest
from tornado.routing import PathMatches, Rule
from tornado.web import RequestHandler

BODY_HEADERS = ("Content-Length", "Transfer-Encoding", "Content-Type")


class BodilessPathMatches(PathMatches):
    """A path pattern that matches only a request declaring no body."""

    def match(self, request: HTTPServerRequest) -> dict[str, Any] | None:
        headers = request.headers
        if any(name in headers for name in BODY_HEADERS):
            return None
        return super().match(request)


def unstreamed(handler: type[RequestHandler]) -> type[RequestHandler]:
    """The handler's twin that takes its (empty) body whole: the handler itself if it does not
    stream."""
    if not handler._stream_request_body:
        return handler
    return type(handler.__name__, (handler,), {
        "_stream_request_body": False, "__module__": handler.__module__,
        "__qualname__": handler.__qualname__, "__doc__": handler.__doc__,
    })


def tornado_rules(table: list[tuple[str, type, dict[str, Any]]], base_url: str) -> list[Rule]:
    """`table`'s (pattern, handler, kwargs) under `base_url`, each as a bodiless twin's rule
    and then its own."""
    rules: list[Rule] = []
    twins: dict[type, type] = {}
    for pattern, handler, kwargs in table:
        path = url_path_join(base_url, pattern)
        twin = twins.setdefault(handler, unstreamed(handler))
        rules.append(Rule(BodilessPathMatches(path), twin, kwargs))
        rules.append(Rule(PathMatches(path), handler, kwargs))
    return rules
