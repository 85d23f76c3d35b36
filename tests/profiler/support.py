"""A profiler with its gRPC service and no Dask cluster: the external-agent side, in-process.
The service is built over the profiler as the app builds it."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from gswarm_jupyter.core.db import Database
from gswarm_jupyter.profiler._proto import profiler_pb2_grpc as pb_grpc
from gswarm_jupyter.profiler.grpc_server import GrpcServer
from gswarm_jupyter.profiler.service import Profiler
from gswarm_jupyter.profiler.transport import GrpcTls

TOKEN = "secret-token"
AUTH = (("authorization", f"token {TOKEN}"),)


@contextlib.asynccontextmanager
async def grpc_profiler(
    tmp_path: Path, tls: GrpcTls | None = None
) -> AsyncIterator[tuple[Profiler, GrpcServer]]:
    """A started profiler and its started gRPC service on a free loopback port."""
    db = Database(tmp_path / "state.sqlite3")
    db.migrate()
    profiler = Profiler(db, tmp_path / "profiler")
    server = GrpcServer(profiler, "127.0.0.1", 0, lambda: TOKEN, tls or GrpcTls())
    await profiler.start()
    await server.start()
    try:
        yield profiler, server
    finally:
        await server.stop()
        await profiler.stop()
        db.close()


@contextlib.asynccontextmanager
async def stub_for(server: GrpcServer) -> AsyncIterator[pb_grpc.ProfilerServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield pb_grpc.ProfilerServiceStub(channel)


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 and its key: (certfile, keyfile)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


class BlockingRead:
    """A spy over `sessions.read_frames`: notes the thread of each read; a read off the event
    loop's thread waits for `release` (one on the loop runs through: it would stop the loop)."""

    def __init__(self, monkeypatch: Any, fail_once: bool = False) -> None:
        from gswarm_jupyter.profiler import sessions

        self.loop_thread = threading.get_ident()
        self.threads: list[int] = []
        self.entered, self.release = threading.Event(), threading.Event()
        self.fail_once = fail_once
        read = sessions.read_frames

        def spy(*args: Any, **kwargs: Any) -> Any:
            self.threads.append(threading.get_ident())
            self.entered.set()
            if threading.get_ident() != self.loop_thread:
                self.release.wait()
            if self.fail_once:
                self.fail_once = False
                raise OSError("the disk failed")
            return read(*args, **kwargs)

        monkeypatch.setattr(sessions, "read_frames", spy)

    @property
    def off_loop(self) -> bool:
        return bool(self.threads) and self.loop_thread not in self.threads
