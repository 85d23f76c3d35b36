"""`GET /gswarm/api/v1/health` through the full stack (auth, rate limiting, envelope) against a bare
`APIHandler` in the same server, with the same keep-alive client, in interleaved rounds."""

from __future__ import annotations

import http.client
import tempfile
from pathlib import Path

from gswarm_jupyter.testing import LiveServer

from .harness import ROOT, Result, alternate, rate

REQUESTS = 2000
ROUNDS = 5


def run() -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="gswarm-bench-") as tmp:
        server = LiveServer(
            Path(tmp),
            nodes=1,
            extra_args=[
                "--ServerApp.jpserver_extensions={'benchmarks.bare': True}",
                # the limiter runs on every request but never refuses one here
                "--GswarmApp.rate_limit_per_minute=1000000000",
                "--GswarmApp.rate_limit_burst=1000000000",
            ],
            extra_env={"PYTHONPATH": str(ROOT.parent)},
        )
        with server:
            conn = http.client.HTTPConnection("127.0.0.1", server.port)
            headers = {"Authorization": f"token {server.token}"}

            def getter(path: str):
                def get() -> None:
                    conn.request("GET", path, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    assert response.status == 200, response.status

                return get

            full, bare = getter("/gswarm/api/v1/health"), getter("/bench/bare")
            rate(full, 200), rate(bare, 200)  # warm-up
            full_rps, bare_rps = alternate(
                lambda: rate(full, REQUESTS), lambda: rate(bare, REQUESTS), ROUNDS
            )
            conn.close()
    return [
        Result(
            name="health_route_requests_per_second",
            value=full_rps,
            unit="req/s",
            baseline="bare APIHandler, same server and client",
            baseline_value=bare_rps,
            ratio=full_rps / bare_rps,
            goal=">= 0.8",
            note=f"median of {ROUNDS} interleaved rounds of {REQUESTS} keep-alive requests each",
        )
    ]
