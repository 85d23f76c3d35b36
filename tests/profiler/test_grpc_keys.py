"""API keys on the profiler's gRPC service: scopes per call, revocation ends a stream."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest

from gswarm_jupyter.core.access import Access
from gswarm_jupyter.core.audit import AuditLog
from gswarm_jupyter.core.chunks import ChunkRegistry
from gswarm_jupyter.core.db import Database
from gswarm_jupyter.core.key_usage import KeyUsage
from gswarm_jupyter.core.keys import KeyStore
from gswarm_jupyter.core.modelregistry import ModelRegistry
from gswarm_jupyter.core.ratelimit import RateLimiter
from gswarm_jupyter.core.tasks import TaskQueue
from gswarm_jupyter.profiler._proto import profiler_pb2 as pb
from gswarm_jupyter.profiler.grpc_server import GrpcServer
from gswarm_jupyter.profiler.service import Profiler
from gswarm_jupyter.profiler.transport import GrpcTls

from .support import TOKEN, stub_for


@contextlib.asynccontextmanager
async def keyed_profiler(tmp_path):
    db = Database(tmp_path / "state.sqlite3")
    db.migrate()
    access = Access(
        KeyStore(db), KeyUsage(db, TaskQueue(1), ChunkRegistry(db), ModelRegistry(db)),
        AuditLog(db), RateLimiter(1000, 100),
    )
    profiler = Profiler(db, tmp_path / "profiler")
    server = GrpcServer(profiler, "127.0.0.1", 0, lambda: TOKEN, GrpcTls(), access)
    await profiler.start()
    await server.start()
    try:
        yield server, access
    finally:
        await server.stop()
        await profiler.stop()
        db.close()


def key(secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret}"),)


async def test_a_key_is_held_to_its_profiler_scopes(tmp_path):
    async with keyed_profiler(tmp_path) as (server, access), stub_for(server) as stub:
        _, reader = access.keys.create("reader", ["gswarm:profiler:read"])
        _, other = access.keys.create("other", ["gswarm:models:*"])
        _, writer = access.keys.create("writer", [], ["user"])
        status = await stub.GetStatus(pb.GetStatusRequest(), metadata=key(reader))
        assert status.is_profiling is False
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.StartProfiling(pb.StartProfilingRequest(name="s"), metadata=key(reader))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "gswarm:profiler:write" in (err.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListSessions(pb.ListSessionsRequest(), metadata=key(other))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetStatus(pb.GetStatusRequest(), metadata=key("gsk_000000000000_x"))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        session = await stub.StartProfiling(pb.StartProfilingRequest(name="s"),
                                            metadata=key(writer))
        assert session.status == "running"
        events, _ = access.audit.query()
        assert [(e["route"].rsplit("/", 1)[-1], e["decision"]) for e in events] == [
            ("StartProfiling", "denied"), ("ListSessions", "denied"), ("GetStatus", "denied"),
            ("StartProfiling", "allowed"),
        ]


async def test_revoking_a_key_ends_its_subscription(tmp_path):
    async with keyed_profiler(tmp_path) as (server, access), stub_for(server) as stub:
        record, secret = access.keys.create("subscriber", [], ["viewer"])
        call = stub.Subscribe(pb.SubscribeRequest(), metadata=key(secret))
        await asyncio.sleep(0.3)  # the stream is open and waiting for frames
        access.keys.revoke(record.key_id)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await asyncio.wait_for(call.read(), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "revoked" in (err.value.details() or "")
        assert access.keys.watching(record.key_id) == 0
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetStatus(pb.GetStatusRequest(), metadata=key(secret))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
