"""A profiler with its gRPC service and no Dask cluster: the external-agent side, in-process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from gswarm_jupyter.core.db import Database
from gswarm_jupyter.profiler._proto import profiler_pb2_grpc as pb_grpc
from gswarm_jupyter.profiler.service import Profiler

TOKEN = "secret-token"
AUTH = (("authorization", f"token {TOKEN}"),)


@contextlib.asynccontextmanager
async def grpc_profiler(tmp_path: Path) -> AsyncIterator[Profiler]:
    db = Database(tmp_path / "state.sqlite3")
    db.migrate()
    profiler = Profiler(
        db, tmp_path / "profiler", token=lambda: TOKEN, grpc_host="127.0.0.1", grpc_port=0
    )
    await profiler.start()
    try:
        yield profiler
    finally:
        await profiler.stop()
        db.close()


@contextlib.asynccontextmanager
async def stub_for(profiler: Profiler) -> AsyncIterator[pb_grpc.ProfilerServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{profiler.grpc_port}") as channel:
        yield pb_grpc.ProfilerServiceStub(channel)
