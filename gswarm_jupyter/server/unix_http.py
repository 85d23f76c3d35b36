"""The HTTP server under the embedded scheduler's application: tornado, on a unix socket (mode
0600) and never a TCP port. Given to the cluster runtime by the app (`ClusterRuntime(...,
serve_http=serve_on_unix_socket)`), so `cluster/` itself serves no HTTP."""

from __future__ import annotations

from typing import Any

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_unix_socket


def serve_on_unix_socket(application: Any, path: str) -> HTTPServer:
    """`application` (a tornado application) served on the unix socket `path` alone."""
    server = HTTPServer(application)
    server.add_socket(bind_unix_socket(path, mode=0o600))
    return server
