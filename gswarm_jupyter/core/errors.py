"""The API's errors: each carries its code and HTTP status, and nothing of HTTP itself.

`server/` turns these into envelopes; `client/` turns envelopes back into these, so a caller of
the SDK catches the same exception class the domain raised.
"""

from __future__ import annotations

from typing import Any, ClassVar


class GswarmError(Exception):
    """Base of every error the API can answer."""

    code: ClassVar[str] = "INTERNAL_ERROR"
    status: ClassVar[int] = 500

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, details={self.details!r})"


class InvalidRequest(GswarmError):
    code, status = "INVALID_REQUEST", 400


class InvalidInputData(GswarmError):
    code, status = "INVALID_INPUT_DATA", 400


class Unauthorized(GswarmError):
    code, status = "UNAUTHORIZED", 401


class Forbidden(GswarmError):
    code, status = "FORBIDDEN", 403


class ModelNotFound(GswarmError):
    code, status = "MODEL_NOT_FOUND", 404


class NotFound(GswarmError):
    code, status = "NOT_FOUND", 404


class Conflict(GswarmError):
    code, status = "CONFLICT", 409


class PayloadTooLarge(GswarmError):
    """A body, chunk or download over a configured limit; `details` has `limit` and `size`."""

    code, status = "PAYLOAD_TOO_LARGE", 413

    def __init__(
        self, message: str, *, limit: int, size: int | None = None, **details: Any
    ) -> None:
        super().__init__(message, {"limit": limit, "size": size, **details})


class ModelAlreadyLoaded(GswarmError):
    code, status = "MODEL_ALREADY_LOADED", 409


class RateLimitExceeded(GswarmError):
    code, status = "RATE_LIMIT_EXCEEDED", 429


class InternalError(GswarmError):
    code, status = "INTERNAL_ERROR", 500


class TaskFailed(GswarmError):
    code, status = "TASK_FAILED", 500


class NotImplementedFeature(GswarmError):
    code, status = "NOT_IMPLEMENTED", 501


class NetworkError(GswarmError):
    code, status = "NETWORK_ERROR", 502


class ResourceUnavailable(GswarmError):
    code, status = "RESOURCE_UNAVAILABLE", 503


class RequestTimeout(GswarmError):
    code, status = "REQUEST_TIMEOUT", 504


class DependencyFailed(GswarmError):
    code, status = "DEPENDENCY_FAILED", 424


class InsufficientMemory(GswarmError):
    code, status = "INSUFFICIENT_MEMORY", 507

    def __init__(self, message: str, *, required: int, available: int, device: str) -> None:
        super().__init__(message, {"required": required, "available": available, "device": device})


ERRORS_BY_CODE: dict[str, type[GswarmError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        InvalidInputData,
        Unauthorized,
        Forbidden,
        ModelNotFound,
        NotFound,
        Conflict,
        PayloadTooLarge,
        ModelAlreadyLoaded,
        RateLimitExceeded,
        InternalError,
        TaskFailed,
        NotImplementedFeature,
        NetworkError,
        ResourceUnavailable,
        RequestTimeout,
        DependencyFailed,
        InsufficientMemory,
    )
}

# Codes tornado or jupyter_server may raise as bare HTTP statuses, mapped onto the contract's codes.
CODE_BY_STATUS: dict[int, str] = {
    400: "INVALID_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "INVALID_REQUEST",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    429: "RATE_LIMIT_EXCEEDED",
    501: "NOT_IMPLEMENTED",
    502: "NETWORK_ERROR",
    503: "RESOURCE_UNAVAILABLE",
    504: "REQUEST_TIMEOUT",
    507: "INSUFFICIENT_MEMORY",
}


def error_from_dict(error: dict[str, Any]) -> GswarmError:
    """Rebuild the exception an envelope's `error` describes (unknown codes become InternalError)."""
    cls = ERRORS_BY_CODE.get(str(error.get("code")), InternalError)
    details = dict(error.get("details") or {})
    message = str(error.get("message", ""))
    if cls in (InsufficientMemory, PayloadTooLarge):
        exc = GswarmError.__new__(cls)
        GswarmError.__init__(exc, message, details)
        return exc
    return cls(message, details)
