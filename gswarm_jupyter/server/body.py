"""A request body read under a size limit, and parsed off the event loop when it is large.

Invariant: no more than `limit` bytes of a body are ever kept. A declared `Content-Length` over
the limit is refused before the body is read (`check_declared`); a chunked body over it is
counted but dropped, and refused when the handler asks for it. A body over `INLINE_BYTES` is
parsed as JSON (and validated, when its model is known) in a thread, so a large body never
blocks the event loop: at its last declared byte, or, for a chunked body (no `Content-Length`),
in `complete`, which the handler base awaits before a method with a body runs.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from ..core.errors import GswarmError, PayloadTooLarge
from ..core.validation import parse_json_object, validate
from . import fastjson

M = TypeVar("M", bound=BaseModel)

INLINE_BYTES = 64 * 1024  # smaller bodies parse faster than a hop to a thread


class RequestBody:
    """One request's body: fed by tornado's `data_received`, read by the handler's `body()`."""

    def __init__(self, limit: int, declared: int | None, model: type[BaseModel] | None) -> None:
        self.limit = limit
        self.declared = declared
        self.model = model  # what the route's operation expects: validated along with the parse
        self.received = 0
        self._buffer: bytearray | None = bytearray()
        self._data: dict[str, Any] | None = None  # the parsed JSON object
        self._validated: BaseModel | None = None  # `_data` as `model`
        self._error: GswarmError | None = None  # of the parse (any model), or of `model`

    def check_declared(self) -> None:
        """`PayloadTooLarge` when the declared length is over the limit (nothing read yet)."""
        if self.declared is not None and self.declared > self.limit:
            raise self._too_large(self.declared)

    def feed(self, chunk: bytes) -> Awaitable[None] | None:
        """Keep `chunk` (drop it past the limit); the last chunk of a declared length answers
        the parse to await before the handler runs."""
        self.received += len(chunk)
        if self.received > self.limit:
            self._buffer = None
            return None
        assert self._buffer is not None
        self._buffer += chunk
        if self.received == self.declared and self.received > INLINE_BYTES:
            return self._parse_in_thread()
        return None

    async def complete(self) -> None:
        """The whole body has arrived: parse a large one in a thread unless that is done."""
        if (self._buffer is not None and self._data is None and self._error is None
                and self.received > INLINE_BYTES):
            await self._parse_in_thread()

    def value(self, model: type[M]) -> M:
        """The body validated as `model` (an empty body is `{}`)."""
        if self.received > self.limit:
            raise self._too_large(self.received)
        if self._error is not None and (self._data is None or model is self.model):
            raise self._error
        if self._validated is not None and model is self.model:
            return self._validated  # type: ignore[return-value]
        if self._data is None:
            self._data = self._json()
        return validate(model, self._data, "body")

    async def _parse_in_thread(self) -> None:
        await asyncio.to_thread(self._parse)
        self._buffer = None  # parsed: the bytes are no longer needed

    def _parse(self) -> None:
        try:
            self._data = self._json()
            if self.model is not None:
                self._validated = validate(self.model, self._data, "body")
        except GswarmError as exc:
            self._error = exc

    def _json(self) -> dict[str, Any]:
        return parse_json_object(self._buffer or b"{}", "body", fastjson.loads)

    def _too_large(self, size: int) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the request body is {size} bytes; the limit is {self.limit} bytes "
            "(GswarmApp.max_body_bytes; send large data as a file:// or http(s) url)",
            limit=self.limit, size=size,
        )


BODY_METHODS = ("post", "put", "patch", "delete")


def after_body(method: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """`method` run once its handler's `_body` is complete (parsed in a thread when large)."""
    if getattr(method, "after_body", False):
        return method

    @functools.wraps(method)
    async def run(handler: Any, *args: Any, **kwargs: Any) -> Any:
        if handler._body is not None:
            await handler._body.complete()
        result = method(handler, *args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    run.after_body = True  # type: ignore[attr-defined]
    return run


def declared_length(value: str | None) -> int | None:
    """The `Content-Length` a request declares (None when it has none)."""
    if value is None or not value.strip().isdigit():
        return None
    return int(value)
