"""A real HTTP server in a thread (on 127.0.0.1) that serves byte strings, honours `Range`, records
the requests, can break a response off midway (to test resumed downloads), answer redirects, and
send a body without its length (so only counting the bytes can bound it)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Source:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.break_after: dict[str, int] = {}  # path -> bytes sent before the first response dies
        self.redirects: dict[str, str] = {}  # path -> Location of a 302
        self.unsized: set[str] = set()  # paths answered without Content-Length
        self.requests: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def __enter__(self) -> Source:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(source: Source) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.lstrip("/")
            source.requests.append({"path": path, "range": self.headers.get("Range"),
                                    "host": self.headers.get("Host"),
                                    "authorization": self.headers.get("Authorization")})
            if path in source.redirects:
                self.send_response(302)
                self.send_header("Location", source.redirects[path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = source.files.get(path)
            if data is None:
                self.send_error(404)
                return
            start = 0
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[6:-1])
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            if path not in source.unsized:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            cut = source.break_after.pop(path, None)
            if cut is not None:
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(body)

    return Handler
