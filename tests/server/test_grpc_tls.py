"""A Jupyter server with a certificate serves the profiler's gRPC over TLS with that certificate."""

from __future__ import annotations

import grpc
import pytest

from gswarm_jupyter.profiler._proto import profiler_pb2 as pb
from gswarm_jupyter.profiler._proto import profiler_pb2_grpc as pb_grpc
from gswarm_jupyter.profiler.transport import channel_credentials

from ..profiler.support import self_signed


@pytest.fixture
def certificate(tmp_path):
    folder = tmp_path / "tls"
    folder.mkdir()
    return self_signed(folder)


@pytest.fixture
def jp_server_config(gswarm_config, certificate):
    certfile, keyfile = certificate
    return {
        "ServerApp": {
            "jpserver_extensions": {"gswarm_jupyter": True},
            "certfile": str(certfile),
            "keyfile": str(keyfile),
        },
        "GswarmApp": gswarm_config,
    }


async def test_grpc_uses_the_jupyter_certificate(gswarm_app, jp_serverapp, certificate):
    certfile, _ = certificate
    port = gswarm_app.context.profiler_grpc.port
    assert port
    auth = (("authorization", f"token {jp_serverapp.identity_provider.token}"),)
    credentials = channel_credentials(str(certfile))
    async with grpc.aio.secure_channel(f"localhost:{port}", credentials) as channel:
        stub = pb_grpc.ProfilerServiceStub(channel)
        status = await stub.GetStatus(pb.GetStatusRequest(), metadata=auth, timeout=10)
        assert status.is_profiling is False
    async with grpc.aio.insecure_channel(f"localhost:{port}") as channel:
        stub = pb_grpc.ProfilerServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetStatus(pb.GetStatusRequest(), metadata=auth, timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
