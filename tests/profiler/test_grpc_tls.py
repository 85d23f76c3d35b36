"""The gRPC service over TLS (loopback only), and the address rules that keep the token off the
network in clear (pure: no test binds or dials anything but loopback)."""

import asyncio
import os
import sys

import grpc
import pytest

from gswarm_jupyter.profiler._proto import profiler_pb2 as pb
from gswarm_jupyter.profiler._proto import profiler_pb2_grpc as pb_grpc
from gswarm_jupyter.profiler.agent import Agent
from gswarm_jupyter.profiler.transport import (
    GrpcTls,
    agent_uses_tls,
    channel_credentials,
    host_of,
    is_loopback,
    plaintext_refusal,
)

from .support import AUTH, TOKEN, grpc_profiler, self_signed


async def _status(channel: grpc.aio.Channel) -> pb.GetStatusResponse:
    stub = pb_grpc.ProfilerServiceStub(channel)
    return await stub.GetStatus(pb.GetStatusRequest(), metadata=AUTH, timeout=10)


async def test_a_tls_service_answers_a_client_trusting_its_certificate_and_no_other(tmp_path):
    certfile, keyfile = self_signed(tmp_path)
    tls = GrpcTls(str(certfile), str(keyfile))
    async with grpc_profiler(tmp_path, tls) as (profiler, server):
        target = f"127.0.0.1:{server.port}"
        async with grpc.aio.secure_channel(target, channel_credentials(str(certfile))) as channel:
            status = await _status(channel)
        assert status.is_profiling is False
        # the same name the certificate carries, as Jupyter's own clients would use
        localhost = f"localhost:{server.port}"
        async with grpc.aio.secure_channel(localhost, channel_credentials(str(certfile))) as ch:
            assert (await _status(ch)).is_profiling is False
        # plaintext to a TLS port: no answer at all, token or not
        async with grpc.aio.insecure_channel(target) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _status(channel)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        # TLS trusting only the system's roots: the self-signed certificate is refused
        async with grpc.aio.secure_channel(target, channel_credentials()) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _status(channel)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_an_agent_streams_over_tls_with_the_ca_and_never_connects_in_plaintext(tmp_path):
    certfile, keyfile = self_signed(tmp_path)
    async with grpc_profiler(tmp_path, GrpcTls(str(certfile), str(keyfile))) as (profiler, server):
        target = f"127.0.0.1:{server.port}"
        plain = Agent(target, TOKEN, name="plain", chunk_s=0.2, retry_s=0.1)
        running = asyncio.ensure_future(plain.run())
        try:
            while plain.reconnects < 2:
                await asyncio.sleep(0.05)
            assert not plain.connected.is_set()
        finally:
            plain.stop()
            await asyncio.wait_for(running, 10)
        # the command line: --ca-file turns TLS on even for a loopback server
        command = [
            sys.executable, "-m", "gswarm_jupyter.profiler.agent", "--server", target,
            "--name", "tls-node", "--ca-file", str(certfile),
        ]
        agent = await asyncio.create_subprocess_exec(
            *command, env={**os.environ, "GSWARM_TOKEN": TOKEN}
        )
        try:
            for _ in range(600):
                if profiler.hub.latest.get("tls-node") is not None:
                    break
                await asyncio.sleep(0.1)
        finally:
            agent.terminate()
            assert await asyncio.wait_for(agent.wait(), 30) == 0
        assert profiler.latest(["tls-node"])[0]["host"]["memory_total_bytes"] > 0
        assert [c["client_id"] for c in profiler.clients()] == ["tls-node"]


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True), ("127.3.2.1", True), ("localhost", True), ("LOCALHOST", True),
        ("::1", True), ("[::1]", True), ("::ffff:127.0.0.1", True),
        ("[::]", False), ("::", False), ("0.0.0.0", False), ("", False),
        ("10.1.2.3", False), ("192.168.0.7", False), ("2001:db8::1", False),
        ("gpu-head.example", False),
    ],
)
def test_loopback_is_this_machine_only(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    "host, tls, refused",
    [
        ("127.0.0.1", GrpcTls(), False),
        ("localhost", GrpcTls(), False),
        ("[::1]", GrpcTls(), False),
        ("[::]", GrpcTls(), True),  # where Jupyter listens on every interface
        ("0.0.0.0", GrpcTls(), True),
        ("10.0.0.5", GrpcTls(), True),
        ("jupyter-host", GrpcTls(), True),
        ("[::]", GrpcTls(insecure=True), False),
        ("[::]", GrpcTls("cert.pem", "key.pem"), False),
        ("10.0.0.5", GrpcTls("cert.pem"), False),
    ],
)
def test_plaintext_off_loopback_is_refused_unless_tls_or_grpc_insecure(host, tls, refused):
    reason = plaintext_refusal(host, tls)
    assert (reason is not None) is refused
    if refused:
        assert "grpc_insecure" in reason and "certfile" in reason and host in reason


@pytest.mark.parametrize(
    "server, flags, tls",
    [
        ("127.0.0.1:8090", {}, False),
        ("localhost:8090", {}, False),
        ("[::1]:8090", {}, False),
        ("127.0.0.1:8090", {"tls": True}, True),
        ("127.0.0.1:8090", {"ca_file": "ca.pem"}, True),
        ("gpu-head:8090", {}, True),
        ("10.0.0.5:8090", {}, True),
        ("[2001:db8::1]:8090", {}, True),
        ("gpu-head:8090", {"insecure": True}, False),
    ],
)
def test_the_agent_uses_tls_unless_its_server_is_on_loopback(server, flags, tls):
    assert agent_uses_tls(server, **flags) is tls


@pytest.mark.parametrize(
    "target, host",
    [("h:1", "h"), ("[::1]:8090", "::1"), ("127.0.0.1:8090", "127.0.0.1"), ("::1", "::1"),
     ("host", "host")],
)
def test_host_of_a_target(target, host):
    assert host_of(target) == host
