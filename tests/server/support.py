"""Test-only server parts: an Authorizer that refuses, and an extension with a route that echoes a
validated body (the base handler's parsing, exercised through a real server)."""

from __future__ import annotations

from jupyter_server.auth.authorizer import Authorizer
from pydantic import BaseModel, ConfigDict

from gswarm_jupyter.server.base import GswarmHandler


class ReadOnlyAuthorizer(Authorizer):
    """Grants reads of gswarm resources, except the compute plane; refuses every write."""

    def is_authorized(self, handler, user, action, resource):  # type: ignore[no-untyped-def]
        if resource.startswith("gswarm:"):
            return action == "read" and resource != "gswarm:compute"
        return True


class EchoBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    count: int = 1


class EchoHandler(GswarmHandler):
    def post(self) -> None:
        self.reply(self.body(EchoBody).model_dump(), status=201)


def _jupyter_server_extension_points():
    return [{"module": "tests.server.support"}]


def _load_jupyter_server_extension(serverapp):
    from jupyter_server.utils import url_path_join

    base = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(".*$", [(url_path_join(base, "/gswarm-test/echo"), EchoHandler)])
