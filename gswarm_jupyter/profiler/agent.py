"""The external node agent, for machines outside Dask:

    python -m gswarm_jupyter.profiler.agent --server host:8090 --token T [--name NODE]
        [--ca-file CA.pem | --tls | --insecure]

The token goes over TLS whenever the server is not on loopback (or `--tls` / `--ca-file` is
given); `--insecure` forces plaintext, for a server run with `grpc_insecure`.

It samples the host (and its GPUs where NVML answers) on the plan the server gives, keeps every
frame until the server acknowledges it, and streams them in short client streams. When the server
is away it keeps sampling into its buffer; on reconnect `Connect` says which sequence number the
server holds, and the rest is sent again with its own timestamps (the server drops repeats).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from ._proto import profiler_pb2 as pb
from ._proto import profiler_pb2_grpc as pb_grpc
from .convert import frame_to_proto, gpu_info_to_proto
from .loop import FrameBuffer, SamplingLoop
from .samplers import NodeSampler
from .transport import agent_uses_tls, channel_credentials

log = logging.getLogger("gswarm_jupyter.profiler.agent")


class Unauthenticated(Exception):
    """The server refused the token."""


class Agent:
    def __init__(
        self,
        server: str,
        token: str,
        name: str | None = None,
        nvml: Any | None = None,
        chunk_s: float = 0.5,
        retry_s: float = 0.5,
        capacity: int | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.server = server
        self.credentials = credentials  # None: plaintext
        self.metadata = (("authorization", f"token {token}"),)
        self.name = name or socket.gethostname()
        self.chunk_s = chunk_s
        self.retry_s = retry_s
        buffer = FrameBuffer(capacity) if capacity else FrameBuffer()
        self.loop = SamplingLoop(NodeSampler(self.name, nvml), buffer)
        self.node_id: str | None = None
        self.connected = asyncio.Event()
        self.acked = 0
        self.reconnects = 0
        self._stop = asyncio.Event()

    @property
    def buffer(self) -> FrameBuffer:
        return self.loop.buffer

    async def run(self) -> None:
        """Sample and stream until `stop()`; reconnect after any failure but a refused token."""
        self.loop.start()
        try:
            while not self._stop.is_set():
                try:
                    await self._session()
                except Unauthenticated:
                    raise
                except (grpc.aio.AioRpcError, OSError) as exc:
                    self.connected.clear()
                    self.reconnects += 1
                    log.info("gswarm agent: server unreachable (%s); buffering", _short(exc))
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), self.retry_s)
        finally:
            self.loop.stop()

    def stop(self) -> None:
        self._stop.set()

    async def _session(self) -> None:
        async with self._channel() as channel:
            stub = pb_grpc.ProfilerServiceStub(channel)
            info = self.loop.sampler.info()
            try:
                hello = await stub.Connect(
                    pb.ConnectRequest(
                        name=self.name,
                        hostname=info["hostname"],
                        instance=self.buffer.instance,
                        gpus=[gpu_info_to_proto(g) for g in info["gpus"]],
                    ),
                    metadata=self.metadata,
                    timeout=10,
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                    raise Unauthenticated(exc.details()) from None
                raise
            self.node_id = self.loop.sampler.node = hello.node_id
            self._acknowledge(hello.last_seq, hello.plan)
            self.connected.set()
            while not self._stop.is_set():
                ack = await stub.StreamMetrics(self._chunk(), metadata=self.metadata, timeout=30)
                self._acknowledge(ack.last_seq, ack.plan)

    def _channel(self) -> grpc.aio.Channel:
        if self.credentials is None:
            return grpc.aio.insecure_channel(self.server)
        return grpc.aio.secure_channel(self.server, self.credentials)

    def _acknowledge(self, last_seq: int, plan: pb.SamplingPlan) -> None:
        self.acked = max(self.acked, last_seq)
        self.buffer.ack(self.acked)
        self.loop.set_plan(dict(plan.sessions))

    async def _chunk(self) -> AsyncIterator[pb.Frame]:
        """Every frame not acknowledged yet, then new ones as they come, for `chunk_s`."""
        sent = self.acked
        end = time.monotonic() + self.chunk_s
        while True:
            for frame in self.buffer.pending(after=sent):
                yield frame_to_proto({**frame, "node": self.node_id})
                sent = frame["seq"]
            if time.monotonic() >= end or self._stop.is_set():
                return
            await asyncio.sleep(0.02)


def _short(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return str(exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gswarm_jupyter.profiler.agent",
        description="Stream this machine's host and GPU metrics to a gswarm server.",
    )
    parser.add_argument("--server", required=True, help="host:port of the profiler's gRPC service")
    parser.add_argument(
        "--token",
        default=os.environ.get("GSWARM_TOKEN", ""),
        help="the Jupyter token ($GSWARM_TOKEN)",
    )
    parser.add_argument("--name", default=None, help="node id to ask for (default: the hostname)")
    parser.add_argument("--chunk-seconds", type=float, default=0.5, help="length of each stream")
    transport = parser.add_mutually_exclusive_group()
    transport.add_argument(
        "--tls", action="store_true",
        help="use TLS even to a loopback server (the default for any other server)",
    )
    transport.add_argument(
        "--insecure", action="store_true",
        help="plaintext even to a remote server (one run with GswarmApp.grpc_insecure)",
    )
    parser.add_argument(
        "--ca-file", default=None,
        help="PEM file of the CA (or self-signed certificate) to trust; implies TLS",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.insecure and args.ca_file:
        parser.error("--insecure and --ca-file contradict each other")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    credentials = None
    if agent_uses_tls(args.server, args.tls, args.ca_file, args.insecure):
        try:
            credentials = channel_credentials(args.ca_file)
        except OSError as exc:
            print(f"gswarm agent: cannot read the CA file: {exc}", file=sys.stderr)
            return 2
    agent = Agent(
        args.server, args.token, args.name, chunk_s=args.chunk_seconds, credentials=credentials
    )

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in ("SIGINT", "SIGTERM"):
            with contextlib.suppress(NotImplementedError, AttributeError):
                import signal

                loop.add_signal_handler(getattr(signal, sig), agent.stop)
        await agent.run()

    try:
        asyncio.run(serve())
    except Unauthenticated as exc:
        print(f"gswarm agent: the server refused the token: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
