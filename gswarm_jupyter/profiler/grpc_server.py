"""`ProfilerService` on `grpc.aio`, in the Jupyter server's event loop, behind the Jupyter token
or an API key with a `gswarm:profiler` scope, over TLS or on loopback (see `transport`)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from ..core.access import Access, Caller
from ..core.errors import GswarmError, Unauthorized
from ..core.keys import is_key_secret
from ._proto import profiler_pb2 as pb
from ._proto import profiler_pb2_grpc as pb_grpc
from .grpc_revoke import closing_on_revoke
from .convert import (
    frame_to_proto,
    gpu_info_from_proto,
    plan_to_proto,
    session_to_proto,
    summary_to_proto,
)
from .transport import GrpcTls, PlaintextRefused, plaintext_refusal, server_credentials

if TYPE_CHECKING:
    from .service import Profiler

log = logging.getLogger(__name__)

STATUS_BY_HTTP = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ALREADY_EXISTS,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


def token_of(metadata: Any) -> str | None:
    """The token of an `authorization: token <t>` or `Bearer <t>` metadata entry."""
    for key, value in metadata or ():
        if key.lower() == "authorization":
            scheme, _, token = str(value).strip().partition(" ")
            if scheme.lower() in ("token", "bearer") and token.strip():
                return token.strip()
    return None


class TokenAuth(grpc.aio.ServerInterceptor):
    """Refuses every call whose metadata lacks the server's token or a live API key holding the
    call's `gswarm:profiler` scope (UNAUTHENTICATED, PERMISSION_DENIED); a key's streams end when
    it is revoked. Writes and denials go to the audit log when `access` is given."""

    def __init__(self, token: Callable[[], str], access: Access | None = None) -> None:
        self.token = token
        self.access = access

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        given = token_of(details.invocation_metadata)
        if given is not None and is_key_secret(given) and self.access is not None:
            return self._with_key(handler, details.method, given)
        expected = self.token()
        # Without a token to compare against (password login, a custom IdentityProvider) nobody
        # can prove who they are: refuse rather than serve everyone.
        if not expected or given is None or not hmac.compare_digest(given, expected):
            self._audit(Caller("grpc:unknown", None, False), details.method, 401)
            return _refusal(handler)
        self._audit(Caller("token:grpc", None, True), details.method, 200)
        return handler

    def _with_key(self, handler: grpc.RpcMethodHandler, method: str,
                  secret: str) -> grpc.RpcMethodHandler:
        assert self.access is not None
        verb = "GET" if method.rsplit("/", 1)[-1] in READ_CALLS else "POST"
        try:
            caller = self.access.authenticate(secret)
        except Unauthorized as exc:
            self._audit(Caller.refused("grpc:unknown", exc), method, exc.status)
            return _refusal(handler, grpc.StatusCode.UNAUTHENTICATED, exc.message)
        rate = self.access.rate(caller)
        try:
            if rate is not None and not rate.allowed:
                raise self.access.refuse_rate(rate)
            self.access.allow(caller, ("profiler",), verb)
        except GswarmError as exc:
            self._audit(caller, method, exc.status)
            return _refusal(handler, STATUS_BY_HTTP.get(exc.status, grpc.StatusCode.INTERNAL),
                            exc.message)
        self._audit(caller, method, 200)
        assert caller.key is not None
        return closing_on_revoke(handler, self.access.keys.watch, caller.key.key_id)

    def _audit(self, caller: Caller, method: str, status: int) -> None:
        if self.access is None:
            return
        action = "read" if method.rsplit("/", 1)[-1] in READ_CALLS else "write"
        self.access.record(caller, "GRPC", method, ("profiler",), status, action)


READ_CALLS = frozenset({"Subscribe", "GetStatus", "ListSessions"})


def _refusal(
    handler: grpc.RpcMethodHandler,
    code: grpc.StatusCode = grpc.StatusCode.UNAUTHENTICATED,
    message: str = "a valid Jupyter token or API key is required in the 'authorization' metadata",
) -> grpc.RpcMethodHandler:
    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, message)

    kinds = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    make = kinds[(handler.request_streaming, handler.response_streaming)]
    return make(
        refuse,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class ProfilerServicer(pb_grpc.ProfilerServiceServicer):
    def __init__(self, profiler: Profiler) -> None:
        self.profiler = profiler

    async def Connect(self, request: pb.ConnectRequest, context: Any) -> pb.ConnectResponse:
        node_id, plan, last_seq = self.profiler.connect_agent(
            request.name,
            request.hostname,
            request.instance,
            [gpu_info_from_proto(g) for g in request.gpus],
        )
        return pb.ConnectResponse(
            node_id=node_id,
            plan=plan_to_proto(plan, self.profiler.idle_interval_ms),
            last_seq=last_seq,
        )

    async def StreamMetrics(
        self, request_iterator: AsyncIterator[pb.Frame], context: Any
    ) -> pb.StreamMetricsResponse:
        received = accepted = 0
        node = ""
        state = None
        ingest = self.profiler.hub.ingest_message  # the message as it came: no dict, no JSON
        async for message in request_iterator:
            if state is None or message.node != node:
                node = message.node
                state = self.profiler.agent(node)
                if state is None:
                    await context.abort(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"unknown node {node!r}: call Connect first",
                    )
            received += 1
            accepted += ingest(state, message)
        state = self.profiler.agent(node) if node else None
        return pb.StreamMetricsResponse(
            accepted=accepted,
            duplicates=received - accepted,
            last_seq=state.last_seq if state else 0,
            plan=plan_to_proto(self.profiler.plan(node), self.profiler.idle_interval_ms),
        )

    async def Subscribe(
        self, request: pb.SubscribeRequest, context: Any
    ) -> AsyncIterator[pb.Frame]:
        subscription = self.profiler.subscribe(
            list(request.sessions), list(request.nodes), list(request.metrics)
        )
        try:
            async for frame in subscription:
                yield frame_to_proto(frame)
        finally:
            subscription.close()

    async def GetStatus(self, request: pb.GetStatusRequest, context: Any) -> pb.GetStatusResponse:
        status = self.profiler.status()
        active = {s.name: s for s in self.profiler.store.running.values()}
        return pb.GetStatusResponse(
            is_profiling=status["is_profiling"],
            active_sessions=[
                session_to_proto(active[s["name"]].record()) for s in status["active_sessions"]
            ],
            connected_clients=status["connected_clients"],
            sampling_frequency_ms=status["sampling_frequency_ms"],
        )

    async def StartProfiling(
        self, request: pb.StartProfilingRequest, context: Any
    ) -> pb.SessionInfo:
        try:
            record = await self.profiler.start_session(
                request.name,
                (
                    request.sampling_frequency_ms
                    if request.HasField("sampling_frequency_ms")
                    else None
                ),
                list(request.nodes) or None,
                list(request.metrics) or None,
                dict(request.tags) or None,
            )
        except GswarmError as exc:
            await _abort(context, exc)
        return session_to_proto(record)

    async def StopProfiling(
        self, request: pb.StopProfilingRequest, context: Any
    ) -> pb.StopProfilingResponse:
        try:
            detail = await self.profiler.stop_session(request.name)
        except GswarmError as exc:
            await _abort(context, exc)
        response = pb.StopProfilingResponse(session=session_to_proto(detail))
        summary_to_proto(detail["summary"], response.summary)
        return response

    async def ListSessions(
        self, request: pb.ListSessionsRequest, context: Any
    ) -> pb.ListSessionsResponse:
        return pb.ListSessionsResponse(
            sessions=[session_to_proto(r) for r in self.profiler.sessions()]
        )


async def _abort(context: Any, exc: GswarmError) -> None:
    code = STATUS_BY_HTTP.get(exc.status, grpc.StatusCode.INTERNAL)
    await context.abort(code, f"{exc.code}: {exc.message}")


class GrpcServer:
    """Binds `host:port` (a free port when `port` is 0); `port` is the bound one once started.

    With `tls` enabled it serves TLS only; without, it refuses to start off loopback unless
    `tls.insecure` allows plaintext there."""

    def __init__(
        self,
        profiler: Profiler,
        host: str,
        port: int,
        token: Callable[[], str],
        tls: GrpcTls = GrpcTls(),
        access: Access | None = None,
    ) -> None:
        self.profiler = profiler
        self.host = host
        self.requested_port = port
        self.token = token
        self.tls = tls
        self.access = access
        self.port: int | None = None
        self._server: grpc.aio.Server | None = None

    async def start(self, port: int | None = None) -> int:
        refusal = plaintext_refusal(self.host, self.tls)
        if refusal is not None:
            raise PlaintextRefused(refusal)
        credentials = server_credentials(self.tls)
        server = grpc.aio.server(interceptors=[TokenAuth(self.token, self.access)])
        pb_grpc.add_ProfilerServiceServicer_to_server(ProfilerServicer(self.profiler), server)
        wanted = self.requested_port if port is None else port
        address = f"{self.host}:{wanted}"
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
        if not bound:
            raise OSError(f"gRPC could not bind {self.host}:{wanted}")
        await server.start()
        self._server, self.port = server, bound
        log.info(
            "gswarm: profiler gRPC service on %s:%d (%s)",
            self.host, bound, "TLS" if credentials is not None else "plaintext",
        )
        return bound

    async def serve(self) -> None:
        """Start, or log why not: the rest of the server works without the gRPC service."""
        try:
            await self.start()
        # the port is taken, the certificate unreadable, or plaintext refused: serve the rest
        except (OSError, RuntimeError) as exc:
            log.error("gswarm: the profiler's gRPC service could not start: %s", exc)

    async def stop(self, grace: float = 1.0) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)
