"""The one base handler every gswarm route stands on.

In `prepare`, in this order: identity (an `Authorization: Bearer gsk_...` API key, checked here;
anything else goes to Jupyter's own IdentityProvider), rate limit (headers on every limited
response), `401` without credentials, the origin and XSRF for cookie-authenticated writes (`403`),
the route's resources (`routes.ROUTE_RESOURCES`): a key's scopes, else the Authorizer (`403`), a
key's task quota (`429`), then the body's declared size (`413`). Every call ends in the audit log
when `core.audit.should_log` says so.
Jupyter's own `prepare` answers `403` for a missing login and checks XSRF before it knows the user;
the contract wants `401` for both, so the steps are taken here explicitly with the same Jupyter
parts. Jupyter refuses a foreign origin's XSRF check with a `404`; here it is the contract's `403`.

Bodies are streamed in (`stream_request_body`): nothing is read before `prepare` has passed, and
no more than `GswarmContext.max_body_bytes` of a body is kept (see `body.RequestBody`). A request
declaring no body is served by the handler's twin that does not stream (`dispatch`), which saves
it two turns of the event loop and changes nothing else.

Replies are the contract's envelope; errors of `core` become envelopes with their code and status.
Expected refusals (4xx, 501) log one line at INFO, other 5xx of `core` one line at WARNING; only an
unexpected error (a bug: `INTERNAL_ERROR`) logs its traceback.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable
from http.client import responses
from typing import Any, TypeVar

from jupyter_server.auth.decorator import HTTP_METHOD_TO_AUTH_ACTION
from jupyter_server.auth.identity import User
from jupyter_server.base.call_context import CallContext
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import ensure_async
from pydantic import BaseModel
from tornado import web

from ..core.access import BytesQuotaExceeded, Caller
from ..core.clock import iso
from ..core.errors import (
    CODE_BY_STATUS,
    Forbidden,
    GswarmError,
    Unauthorized,
)
from ..core.keys import is_key_secret
from ..core.queue_api import TaskStarting
from ..core.ratelimit import Decision
from ..core.validation import validate
from .body import BODY_METHODS, RequestBody, after_body, declared_length
from .context import GswarmContext
from . import wire
from .routes import CONTROL, Route

log = logging.getLogger("gswarm_jupyter.server")

M = TypeVar("M", bound=BaseModel)


def envelope(data: Any = None, error: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"success": error is None, "data": data, "error": error, "timestamp": iso()}


def key_secret(authorization: str | None) -> str | None:
    """The API key of an `Authorization: Bearer gsk_...` (or `token gsk_...`) header, or None:
    any other credential is Jupyter's to judge."""
    if not authorization:
        return None
    scheme, _, credential = authorization.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() in ("bearer", "token") and is_key_secret(credential):
        return credential
    return None


@web.stream_request_body
class GswarmHandler(APIHandler):
    """Base of every gswarm handler. Subclasses set `auth_resource` and implement methods."""

    auth_resource = "gswarm:cluster"
    _rate: Decision | None = None
    _body: RequestBody | None = None
    _caller: Caller | None = None
    _refusal: Unauthorized | None = None  # why a presented key was refused
    _quota_refused = False  # the answer is the key's bytes quota refusing (audited as denied)
    _answer_log: _AnswerLog | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in BODY_METHODS:  # a chunked body is known whole only when the method runs
            if name in cls.__dict__:
                setattr(cls, name, after_body(cls.__dict__[name]))

    def initialize(self, route: Route | None = None) -> None:
        self.route = route

    @property
    def gswarm(self) -> GswarmContext:
        return self.settings["gswarm"]  # type: ignore[no-any-return]

    # -- the request's way in ---------------------------------------------------------------

    async def prepare(self) -> None:  # type: ignore[override]
        CallContext.set(CallContext.JUPYTER_HANDLER, self)
        if not self.check_host():
            raise Forbidden("host not allowed", {"host": self.request.host})
        method = (self.request.method or "GET").upper()
        access = self.gswarm.access
        secret = key_secret(self.request.headers.get("Authorization"))
        if secret is not None:
            user = self._key_user(secret)
        else:
            user = await ensure_async(self.identity_provider.get_user(self))
        self.current_user = self._jupyter_current_user = user
        if secret is None:  # the identity needs `current_user` set (token_authenticated)
            self._caller = Caller(self._rate_identity(user), None, user is not None)
        caller = self._caller
        assert caller is not None

        self._rate = access.rate(caller)
        if self._rate is not None:
            self._write_rate_headers()
            if not self._rate.allowed:
                raise access.refuse_rate(self._rate)
        if user is None:
            raise self._refusal or Unauthorized(
                "authentication required: send 'Authorization: token <token>'"
            )

        self.set_cors_headers()
        if not self.check_origin():
            raise Forbidden("cross-origin request refused", {"origin": self._origin()})
        if method not in {"GET", "HEAD", "OPTIONS"} and caller.key is None:
            self._check_xsrf(method)
        resources = self.resources(method)
        if caller.key is not None:
            access.allow(caller, resources, method)
        else:
            await self._authorize(user, method, resources)
        body_model = self._body_model(method)
        if caller.key is not None and self._starts_task(method):
            access.before_task(caller)
        self._body = RequestBody(
            self.gswarm.max_body_bytes,
            declared_length(self.request.headers.get("Content-Length")),
            body_model,
        )
        self._body.check_declared()

    def _key_user(self, secret: str) -> User | None:
        """The user a key stands for (never a Jupyter identity), or None with `_caller` set to
        the refused address and `_refusal` to the reason."""
        try:
            self._caller = self.gswarm.access.authenticate(secret)
        except Unauthorized as exc:
            self._caller = Caller.refused(f"ip:{self.request.remote_ip}", exc)
            self._refusal = exc
            return None
        key = self._caller.key
        assert key is not None
        return User(username=self._caller.identity, name=key.name)

    async def _authorize(self, user: Any, method: str, resources: tuple[str, ...]) -> None:
        """A Jupyter identity: the server's Authorizer on each `gswarm:<resource>` touched."""
        action = HTTP_METHOD_TO_AUTH_ACTION.get(method, "write")
        for resource in [f"gswarm:{r}" for r in resources] or [self.auth_resource]:
            allowed = await ensure_async(
                self.authorizer.is_authorized(self, user, action, resource)
            )
            if not allowed:
                raise Forbidden(
                    f"not authorized to {action} {resource}",
                    {"action": action, "resource": resource},
                )

    def _starts_task(self, method: str) -> bool:
        """A call that queues a task: a `202` answer, or a body that takes a task's priority."""
        op = self.route.ops.get(method.lower()) if self.route is not None else None
        if op is None:
            return False
        return op.status == 202 or (op.body is not None and issubclass(op.body, TaskStarting))

    def resources(self, method: str) -> tuple[str, ...]:
        """What this call touches: its route's declaration, else the handler's own resource."""
        if self.route is not None:
            return self.route.resources(method)
        return (self.auth_resource.removeprefix("gswarm:"),)

    def _check_xsrf(self, method: str) -> None:
        """A cookie-authenticated write needs the `_xsrf` token (token-bearing clients do not)."""
        try:
            self.check_xsrf_cookie()
        except web.HTTPError as exc:
            raise Forbidden(
                f"cross-site {method} refused: {exc.log_message or 'XSRF check failed'}; send the "
                "_xsrf cookie's value in an X-XSRFToken header, or authenticate with a token",
                {"reason": "xsrf"},
            ) from None

    def _origin(self) -> str | None:
        return self.request.headers.get("Origin") or self.request.headers.get("Sec-Websocket-Origin")

    def _body_model(self, method: str) -> type[BaseModel] | None:
        op = self.route.ops.get(method.lower()) if self.route is not None else None
        return op.body if op is not None else None

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self._body is None:  # refused before its body: what still arrives is dropped
            return None
        return self._body.feed(chunk)

    def _rate_identity(self, user: Any) -> str:
        """Who a request counts against. Jupyter makes a fresh anonymous user for each
        token-authenticated request without a cookie, so a token identifies its holder."""
        if user is None:
            return f"ip:{self.request.remote_ip}"
        if self.token_authenticated:
            token = self.identity_provider.get_token(self) or ""
            return "token:" + hashlib.sha256(token.encode()).hexdigest()[:16]
        return f"user:{user.username}"

    def body(self, model: type[M]) -> M:
        """The JSON body validated as `model` (unknown fields refused where the model forbids)."""
        assert self._body is not None  # made by `prepare`, which passed
        value = self._body.value(model)
        placed = getattr(value, "placed_bytes", None)
        if self._caller is not None and self._caller.key is not None and callable(placed):
            self.gswarm.access.before_placing(self._caller, placed())
        return value

    def query(self, model: type[M]) -> M:
        """The query string validated as `model` (the last value of a repeated parameter wins)."""
        args = {
            k: v[-1].decode("utf-8", "replace")
            for k, v in self.request.query_arguments.items()
            if k != "token"
        }
        return validate(model, args, "query")

    # -- the way out --------------------------------------------------------------------------

    def reply(self, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        if self._caller is not None and self._caller.key is not None:
            registers = self.route is not None and self.route.path == f"{CONTROL}/models"
            self.gswarm.access.made(self._caller, data, status, registers)
        self.set_status(status)
        for name, value in (headers or {}).items():
            self.set_header(name, value)
        self.finish(wire.dumps(envelope(data)))

    def set_default_headers(self) -> None:
        super().set_default_headers()
        if self._rate is not None:  # `send_error` clears headers; the rate headers survive it
            self._write_rate_headers()

    def _write_rate_headers(self) -> None:
        assert self._rate is not None
        for name, value in self._rate.headers().items():
            self.set_header(name, value)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        self._quota_refused = isinstance(exc, BytesQuotaExceeded)
        if isinstance(exc, GswarmError):
            status_code, error = exc.status, exc.to_dict()
        elif isinstance(exc, web.HTTPError):
            code = CODE_BY_STATUS.get(exc.status_code, "INTERNAL_ERROR")
            message = exc.log_message or exc.reason or responses.get(exc.status_code, "error")
            if exc.args and exc.log_message:
                try:
                    message = exc.log_message % exc.args
                except TypeError:
                    pass
            error = {"code": code, "message": message, "details": {}}
        elif exc is not None:
            error = {
                "code": "INTERNAL_ERROR",
                "message": f"{self.request.method} {self.request.path} failed: "
                f"{type(exc).__name__}: {exc}",
                "details": {},
            }
        else:
            code = CODE_BY_STATUS.get(status_code, "INTERNAL_ERROR")
            error = {"code": code, "message": responses.get(status_code, "error"), "details": {}}
        self.set_status(status_code)
        if status_code == 405 and self.route is not None:
            self.set_header("Allow", ", ".join(m.upper() for m in self.route.ops))
        self.set_header("Content-Type", "application/json")
        self.finish(wire.dumps(envelope(error=error)))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """One line for an answer the API expects to give; a traceback only for a bug."""
        where = f"{self.request.method} {self.request.path}"
        if isinstance(value, GswarmError) and value.code != "INTERNAL_ERROR":
            log.log(_level(value.status), "%s: %d %s: %s", where, value.status, value.code, value)
        elif isinstance(value, web.HTTPError):
            log.log(_level(value.status_code), "%s: %d %s", where, value.status_code,
                    value.get_message() or value.reason or "")
        else:
            log.error("%s failed: %s: %s", where, typ.__name__, value, exc_info=(typ, value, tb))

    @property
    def log(self) -> logging.Logger:  # type: ignore[override]
        """Jupyter's log, through which its access line of an answer that is no bug of the
        server (501, 502, 503, 504, 507) goes out below ERROR (one adapter per request)."""
        if self._answer_log is None:
            self._answer_log = _AnswerLog(super().log, self)
        return self._answer_log  # type: ignore[return-value]

    def on_finish(self) -> None:
        status = self.get_status()
        self.gswarm.requests[status] += 1
        method = (self.request.method or "GET").upper()
        caller = self._caller or Caller(f"ip:{self.request.remote_ip}", None, False)
        try:
            self.gswarm.access.record(
                caller, method, self.request.path, self.resources(method), status,
                quota_refused=self._quota_refused,
            )
        except Exception as exc:  # the database is closed once the server stops
            log.warning("%s %s: not written to the audit log: %s", method, self.request.path, exc)
        super().on_finish()


def _level(status: int) -> int:
    """INFO for refusals (4xx) and what the build cannot serve (501); WARNING for other 5xx."""
    return logging.INFO if status < 500 or status == 501 else logging.WARNING


class _AnswerLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A handler's log: an ERROR while the answer is an expected 5xx goes out at `_level`."""

    def __init__(self, logger: logging.Logger, handler: GswarmHandler) -> None:
        super().__init__(logger, {})
        self.handler = handler

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        status = self.handler.get_status()
        if level >= logging.ERROR and status in _EXPECTED_5XX:
            level = _level(status)
        super().log(level, msg, *args, **kwargs)


_EXPECTED_5XX = {501, 502, 503, 504, 507}  # the contract's answers for what is not a bug


class NotFoundHandler(GswarmHandler):
    """Any path under /gswarm/ that no route serves: the envelope's `NOT_FOUND`."""

    def resources(self, method: str) -> tuple[str, ...]:
        """Nothing: a key of any scope learns that a path does not exist."""
        return ()

    def _not_found(self, *args: Any, **kwargs: Any) -> None:
        raise web.HTTPError(404, "no such route: %s %s", self.request.method, self.request.path)

    get = post = put = patch = delete = _not_found  # type: ignore[assignment]

