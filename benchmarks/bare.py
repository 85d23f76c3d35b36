"""A bare `APIHandler` in the same server: the baseline of the health route's figure."""

from __future__ import annotations

import json

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web


class BareHandler(APIHandler):
    @web.authenticated
    def get(self) -> None:
        self.finish(json.dumps({"status": "healthy"}))


def _jupyter_server_extension_points():
    return [{"module": "benchmarks.bare"}]


def _load_jupyter_server_extension(serverapp):
    base = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(".*$", [(url_path_join(base, "/bench/bare"), BareHandler)])
