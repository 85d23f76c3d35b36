"""gRPC streams opened with an API key end when the key is revoked.

Invariant: a streaming call of a key runs only while the key is live: on revocation the call is
aborted with UNAUTHENTICATED ("API key revoked"), whatever it was waiting on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

Watch = Callable[[str, Callable[[], None]], Callable[[], None]]  # KeyStore.watch
REVOKED = "API key revoked"


def closing_on_revoke(handler: grpc.RpcMethodHandler, watch: Watch,
                      key_id: str) -> grpc.RpcMethodHandler:
    """`handler` as is for unary calls; for streams, one that ends when `key_id` is revoked."""
    if handler.response_streaming:
        behaviour = handler.stream_stream if handler.request_streaming else handler.unary_stream
        make = (grpc.stream_stream_rpc_method_handler if handler.request_streaming
                else grpc.unary_stream_rpc_method_handler)
        return make(_streaming(behaviour, watch, key_id),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(
            _unary_answer(handler.stream_unary, watch, key_id),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler


def _streaming(behaviour: Any, watch: Watch, key_id: str) -> Any:
    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        revoked = asyncio.Event()
        stop = watch(key_id, revoked.set)
        items = behaviour(request, context).__aiter__()
        waiter = asyncio.ensure_future(revoked.wait())
        try:
            while True:
                step = asyncio.ensure_future(items.__anext__())
                await asyncio.wait({step, waiter}, return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    step.cancel()
                    with contextlib.suppress(BaseException):
                        await step
                    await context.abort(grpc.StatusCode.UNAUTHENTICATED, REVOKED)
                try:
                    item = step.result()
                except StopAsyncIteration:
                    return
                yield item
        finally:
            stop()
            waiter.cancel()
            with contextlib.suppress(Exception):
                await items.aclose()  # type: ignore[attr-defined]

    return guarded


def _unary_answer(behaviour: Any, watch: Watch, key_id: str) -> Any:
    async def guarded(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        revoked = asyncio.Event()
        stop = watch(key_id, revoked.set)
        call = asyncio.ensure_future(behaviour(requests, context))
        waiter = asyncio.ensure_future(revoked.wait())
        try:
            await asyncio.wait({call, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not call.done():
                call.cancel()
                with contextlib.suppress(BaseException):
                    await call
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, REVOKED)
            return call.result()
        finally:
            stop()
            waiter.cancel()

    return guarded
