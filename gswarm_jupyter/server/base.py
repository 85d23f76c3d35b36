"""The one base handler every gswarm route stands on.

In `prepare`, in this order: identity (Jupyter's own IdentityProvider), rate limit (headers on every
response), `401` without credentials, the origin and XSRF for cookie-authenticated writes (`403`),
the Authorizer on the handler's `auth_resource` (`403`), then the body's declared size (`413`).
Jupyter's own `prepare` answers `403` for a missing login and checks XSRF before it knows the user;
the contract wants `401` for both, so the steps are taken here explicitly with the same Jupyter
parts. Jupyter refuses a foreign origin's XSRF check with a `404`; here it is the contract's `403`.

Bodies are streamed in (`stream_request_body`): nothing is read before `prepare` has passed, and
no more than `GswarmContext.max_body_bytes` of a body is kept (see `body.RequestBody`).

Replies are the contract's envelope; errors of `core` become envelopes with their code and status.
Expected refusals (4xx, 501) log one line at INFO, other 5xx of `core` one line at WARNING; only an
unexpected error (a bug: `INTERNAL_ERROR`) logs its traceback.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable
from http.client import responses
from typing import Any, TypeVar

from jupyter_server.auth.decorator import HTTP_METHOD_TO_AUTH_ACTION
from jupyter_server.base.call_context import CallContext
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import ensure_async
from pydantic import BaseModel
from tornado import web

from ..core.clock import iso
from ..core.errors import (
    CODE_BY_STATUS,
    Forbidden,
    GswarmError,
    RateLimitExceeded,
    Unauthorized,
)
from ..core.ratelimit import Decision
from ..core.validation import validate
from .body import RequestBody, declared_length
from .context import GswarmContext
from .routes import Route

log = logging.getLogger("gswarm_jupyter.server")

M = TypeVar("M", bound=BaseModel)


def envelope(data: Any = None, error: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"success": error is None, "data": data, "error": error, "timestamp": iso()}


@web.stream_request_body
class GswarmHandler(APIHandler):
    """Base of every gswarm handler. Subclasses set `auth_resource` and implement methods."""

    auth_resource = "gswarm:cluster"
    _rate: Decision | None = None
    _body: RequestBody | None = None

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
        user = await ensure_async(self.identity_provider.get_user(self))
        self.current_user = self._jupyter_current_user = user

        limiter = self.gswarm.limiter
        if limiter.enabled:
            self._rate = limiter.hit(self._rate_identity(user))
            self._write_rate_headers()
            if not self._rate.allowed:
                raise RateLimitExceeded(
                    f"rate limit of {self._rate.limit} requests a minute exceeded; "
                    f"retry in {self._rate.retry_after} s",
                    {"retry_after": self._rate.retry_after},
                )
        if user is None:
            raise Unauthorized("authentication required: send 'Authorization: token <token>'")

        self.set_cors_headers()
        method = (self.request.method or "GET").upper()
        if not self.check_origin():
            raise Forbidden("cross-origin request refused", {"origin": self._origin()})
        if method not in {"GET", "HEAD", "OPTIONS"}:
            self._check_xsrf(method)
        action = HTTP_METHOD_TO_AUTH_ACTION.get(method, "write")
        allowed = await ensure_async(
            self.authorizer.is_authorized(self, user, action, self.auth_resource)
        )
        if not allowed:
            raise Forbidden(
                f"not authorized to {action} {self.auth_resource}",
                {"action": action, "resource": self.auth_resource},
            )
        self._body = RequestBody(
            self.gswarm.max_body_bytes,
            declared_length(self.request.headers.get("Content-Length")),
            self._body_model(method),
        )
        self._body.check_declared()

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
        return self._body.value(model)

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
        self.set_status(status)
        for name, value in (headers or {}).items():
            self.set_header(name, value)
        self.finish(json.dumps(envelope(data), default=str))

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
        self.finish(json.dumps(envelope(error=error), default=str))

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
        server (501, 502, 503, 504, 507) goes out below ERROR."""
        return _AnswerLog(super().log, self)  # type: ignore[return-value]

    def on_finish(self) -> None:
        self.gswarm.requests[self.get_status()] += 1
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

    def _not_found(self, *args: Any, **kwargs: Any) -> None:
        raise web.HTTPError(404, "no such route: %s %s", self.request.method, self.request.path)

    get = post = put = patch = delete = _not_found  # type: ignore[assignment]

