"""The base of gswarm's WebSocket streams: Jupyter's authentication as in `GswarmHandler`
(`401` before the upgrade without credentials, `403` when the Authorizer refuses), JSON events
`{"event", "data", "timestamp"}` out, JSON objects in. A request that is not a WebSocket
handshake is `400 INVALID_REQUEST` in the envelope, like every other refusal."""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.base.call_context import CallContext
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.utils import ensure_async
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..core.clock import iso
from ..core.errors import CODE_BY_STATUS
from .base import envelope
from .context import GswarmContext
from .routes import Op, Route

VERSIONS = ("7", "8", "13")  # what tornado's WebSocket protocol accepts


def socket_op(summary: str) -> Op:
    """A stream's GET in the OpenAPI document: 101 on a handshake, else an error envelope."""
    return Op(summary, status=101, content_type="", enveloped=False, errors=(400,))


def handshake_problem(headers: Any) -> str | None:
    """Why a request is not a WebSocket handshake tornado can accept, or None."""
    if headers.get("Upgrade", "").lower() != "websocket":
        return 'a WebSocket route: send "Upgrade: websocket"'
    if "upgrade" not in (s.strip().lower() for s in headers.get("Connection", "").split(",")):
        return 'a WebSocket handshake needs "Connection: Upgrade"'
    if headers.get("Sec-WebSocket-Version") not in VERSIONS:
        return f"unsupported Sec-WebSocket-Version: use {VERSIONS[-1]}"
    return None


class GswarmSocket(WebSocketMixin, WebSocketHandler, JupyterHandler):  # type: ignore[misc]
    """Subclasses set `auth_resource` and implement `open`/`on_json`."""

    auth_resource = "gswarm:cluster"

    def initialize(self, route: Route | None = None) -> None:
        self.route = route

    @property
    def gswarm(self) -> GswarmContext:
        return self.settings["gswarm"]  # type: ignore[no-any-return]

    async def prepare(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Identity as Jupyter resolves it; `401` (not Jupyter's `403`) when there is none."""
        CallContext.set(CallContext.JUPYTER_HANDLER, self)
        if not self.check_host():
            raise web.HTTPError(403, "host not allowed")
        user = await ensure_async(self.identity_provider.get_user(self))
        self.current_user = self._jupyter_current_user = user
        if user is None:
            raise web.HTTPError(401, "authentication required: send 'Authorization: token <token>'")
        allowed = await ensure_async(
            self.authorizer.is_authorized(self, user, "read", self.auth_resource)
        )
        if not allowed:
            raise web.HTTPError(403, "not authorized to read %s", self.auth_resource)

    async def get(self, *args: Any, **kwargs: Any) -> None:
        problem = handshake_problem(self.request.headers)
        if problem is not None:
            self.set_header("Sec-WebSocket-Version", VERSIONS[-1])
            raise web.HTTPError(400, problem)
        await super().get(*args, **kwargs)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) or "error"
        if isinstance(exc, web.HTTPError) and exc.args and exc.log_message:
            message = exc.log_message % exc.args
        error = {
            "code": CODE_BY_STATUS.get(status_code, "INTERNAL_ERROR"),
            "message": message,
            "details": {},
        }
        if status_code == 405 and self.route is not None:
            self.set_header("Allow", ", ".join(m.upper() for m in self.route.ops))
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(envelope(error=error)))

    def send_event(self, event: str, data: Any) -> bool:
        """Send one event; False once the socket is closed."""
        try:
            self.write_message(
                json.dumps({"event": event, "data": data, "timestamp": iso()}, default=str)
            )
        except WebSocketClosedError:
            return False
        return True

    def on_message(self, message: str | bytes) -> None:
        try:
            data = json.loads(message)
        except ValueError:
            self.send_event(
                "error", {"code": "INVALID_REQUEST", "message": "messages must be JSON"}
            )
            return
        if not isinstance(data, dict):
            self.send_event("error", {"code": "INVALID_REQUEST", "message": "send a JSON object"})
            return
        self.on_json(data)

    def on_json(self, data: dict[str, Any]) -> None:
        """A JSON object from the client."""
