"""The base of gswarm's WebSocket streams: authentication as in `GswarmHandler` (an API key with
its scopes, or Jupyter's identity; `401` before the upgrade without credentials, `403` when the
scopes or the Authorizer refuse), a key's stream closed when the key is revoked, JSON events
`{"event", "data", "timestamp"}` out, JSON objects in. A request that is not a WebSocket
handshake is `400 INVALID_REQUEST` in the envelope, like every other refusal."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from jupyter_server.auth.identity import User
from jupyter_server.base.call_context import CallContext
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.utils import ensure_async
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..core.clock import iso
from ..core.access import Caller
from ..core.errors import CODE_BY_STATUS, Forbidden, Unauthorized
from . import wire
from .base import envelope, key_secret
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
    _caller: Caller | None = None
    _unwatch: Callable[[], None] | None = None

    def initialize(self, route: Route | None = None) -> None:
        self.route = route

    @property
    def gswarm(self) -> GswarmContext:
        return self.settings["gswarm"]  # type: ignore[no-any-return]

    async def prepare(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Identity: an API key (its scopes checked), else Jupyter's; `401` (not Jupyter's `403`)
        when there is none. A denial is written to the audit log."""
        CallContext.set(CallContext.JUPYTER_HANDLER, self)
        if not self.check_host():
            raise web.HTTPError(403, "host not allowed")
        secret = key_secret(self.request.headers.get("Authorization"))
        try:
            if secret is not None:
                await self._prepare_key(secret)
            else:
                await self._prepare_jupyter()
        except web.HTTPError as exc:
            self._audit(exc.status_code)
            raise

    async def _prepare_key(self, secret: str) -> None:
        access = self.gswarm.access
        try:
            self._caller = access.authenticate(secret)
        except Unauthorized as exc:
            self._caller = Caller.refused(f"ip:{self.request.remote_ip}", exc)
            raise web.HTTPError(401, "%s", exc.message) from None
        key = self._caller.key
        assert key is not None
        self.current_user = self._jupyter_current_user = User(
            username=self._caller.identity, name=key.name
        )
        rate = access.rate(self._caller)
        if rate is not None and not rate.allowed:
            raise web.HTTPError(429, "%s", access.refuse_rate(rate).message)
        try:
            access.allow(self._caller, self._resources(), "GET")
        except Forbidden as exc:
            raise web.HTTPError(403, "%s", exc.message) from None

    async def _prepare_jupyter(self) -> None:
        user = await ensure_async(self.identity_provider.get_user(self))
        self.current_user = self._jupyter_current_user = user
        if user is None:
            raise web.HTTPError(401, "authentication required: send 'Authorization: token <token>'")
        self._caller = Caller(f"user:{user.username}", None, True)
        for resource in [f"gswarm:{r}" for r in self._resources()]:
            allowed = await ensure_async(
                self.authorizer.is_authorized(self, user, "read", resource)
            )
            if not allowed:
                raise web.HTTPError(403, "not authorized to read %s", resource)

    def _resources(self) -> tuple[str, ...]:
        if self.route is not None:
            return self.route.resources("GET")
        return (self.auth_resource.removeprefix("gswarm:"),)

    def _audit(self, status: int) -> None:
        caller = self._caller or Caller(f"ip:{self.request.remote_ip}", None, False)
        self.gswarm.access.record(caller, "GET", self.request.path, self._resources(), status)

    def open(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """A key's stream is closed when the key is revoked; subclasses call this first."""
        super().open(*args, **kwargs)
        self._audit(101)
        key_id = self._caller.key_id if self._caller is not None else None
        if key_id is not None:
            self._unwatch = self.gswarm.access.keys.watch(key_id, self._revoked)

    def _revoked(self) -> None:
        self.close(4401, "API key revoked")

    def on_connection_close(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        super().on_connection_close()

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
        self.finish(wire.dumps(envelope(error=error)))

    def send_event(self, event: str, data: Any) -> bool:
        """Send one event; False once the socket is closed."""
        try:
            self.write_message(
                wire.dumps({"event": event, "data": data, "timestamp": iso()})
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
