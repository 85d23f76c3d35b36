"""The profiler's two figures.

- Sampler overhead: the CPU time the sampling loop's own thread spends per second while one node
  samples at 10 Hz (the thread's CPU clock, in-process), as a fraction of one core.
- gRPC ingest: frames per second the real `ProfilerService.StreamMetrics` accepts (deduplicated,
  written to a running session) from 4 concurrent client streams of real frames, against a bare
  `grpc.aio` client-stream server that only counts messages of the same bytes, in the same run.
  Both servers live in one child process; the 4 streams come from this one, so the client side is
  identical for both and the servers get their own core.
- The same with 100 concurrent agent streams (100 agents connected, simulated in this one
  process, loopback only): every frame accepted once and written to the session, counts checked.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

from .harness import Result

SAMPLE_SECONDS = 10.0
SAMPLE_PERIOD_MS = 100
AGENTS = 4
FRAMES_PER_STREAM = 2500
ROUNDS = 7
MANY_AGENTS = 100
MANY_FRAMES_PER_STREAM = 200
MANY_ROUNDS = 5
TOKEN = "bench-token"
AUTH = (("authorization", f"token {TOKEN}"),)
REAL_METHOD = "/gswarm.v1.ProfilerService/StreamMetrics"
BARE_METHOD = "/bench.Bare/Stream"
SESSION = "ingest"


# -- sampler overhead ------------------------------------------------------------------------------


def sampler_overhead() -> Result:
    """Measured in a fresh process of its own, as a node's worker runs it: in this one, after
    the heavy benchmarks, collections of their leftover heap land on the sampling thread too
    (0.0117 in one run against 0.006-0.008 in fresh processes)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        cpu, wall, frames, gpus = pool.apply(_sample_cpu)
    return _sampler_result(cpu, wall, frames, gpus)


def _sample_cpu() -> tuple[float, float, int, int]:
    """The sampling thread's CPU seconds over `SAMPLE_SECONDS` at 10 Hz: (cpu, wall, frames,
    GPUs seen)."""
    from gswarm_jupyter.profiler.loop import SamplingLoop
    from gswarm_jupyter.profiler.samplers import NodeSampler

    loop = SamplingLoop(NodeSampler("bench"))
    loop.start()
    loop.set_plan({"bench": SAMPLE_PERIOD_MS})
    try:
        time.sleep(1.0)  # warm-up: first psutil calls, the plan taken
        thread = next(t for t in threading.enumerate() if t.name == "gswarm-sampler-bench")
        clock = time.pthread_getcpuclockid(thread.ident)  # type: ignore[arg-type]
        cpu0, wall0, seq0 = time.clock_gettime(clock), time.perf_counter(), loop.buffer.seq
        time.sleep(SAMPLE_SECONDS)
        cpu1, wall1, seq1 = time.clock_gettime(clock), time.perf_counter(), loop.buffer.seq
    finally:
        loop.stop()
    gpus = len(loop.sampler.info().get("gpus") or [])
    return cpu1 - cpu0, wall1 - wall0, seq1 - seq0, gpus


def _sampler_result(cpu: float, wall: float, frames: int, gpus: int) -> Result:
    fraction = cpu / wall
    return Result(
        name="sampler_cpu_fraction_at_10hz",
        value=fraction,
        unit="core",
        baseline="one core (1.0 s of CPU per s)",
        baseline_value=1.0,
        ratio=fraction,
        goal="<= 0.01",
        note=(
            f"{frames / wall:.1f} frames/s over {wall:.0f} s in a fresh process; the sampling "
            f"thread's own CPU clock ({cpu / max(1, frames) * 1e3:.2f} ms per frame); host "
            f"readings from /proc (psutil's numbers), {gpus} GPUs through NVML on this machine "
            "(NVML's library absent: probed once at start, never per tick). Where a tick's time "
            "goes, measured at 10 Hz (caches cold each tick, load ~8 on 2 cores): the thread's "
            "wake-up ~80 us, each of /proc/stat, meminfo, diskstats and net/dev ~65-80 us to "
            "read and parse, the frame and its push ~40 us. psutil's readers took 130-350 us "
            "each (a file opened per call; disk_io_counters checks /sys/block for every device "
            "on every call): descriptors kept open and read with pread, and the whole-disk "
            "check once per device, halved the figure (A/B, 5 interleaved rounds, medians "
            "0.0078 -> 0.0038)"
        ),
    )


# -- gRPC ingest -----------------------------------------------------------------------------------


def _serve(conn: Any) -> None:
    """Child process: the real service (with a running session) and the bare server."""
    asyncio.run(_serve_async(conn))


async def _serve_async(conn: Any) -> None:
    import grpc

    from gswarm_jupyter.core.db import Database
    from gswarm_jupyter.profiler.grpc_server import GrpcServer
    from gswarm_jupyter.profiler.service import Profiler

    async def count(request_iterator: Any, context: Any) -> bytes:
        n = 0
        async for _ in request_iterator:
            n += 1
        return str(n).encode()

    with tempfile.TemporaryDirectory(prefix="gswarm-bench-") as tmp:
        db = Database(Path(tmp) / "state.sqlite3")
        db.migrate()
        profiler = Profiler(db, Path(tmp) / "profiler")
        server = GrpcServer(profiler, "127.0.0.1", 0, lambda: TOKEN)
        await profiler.start()
        await server.start()
        await profiler.start_session(SESSION, SAMPLE_PERIOD_MS)
        bare = grpc.aio.server()
        handler = grpc.stream_unary_rpc_method_handler(count)
        bare.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("bench.Bare", {"Stream": handler}),)
        )
        bare_port = bare.add_insecure_port("127.0.0.1:0")
        await bare.start()
        conn.send({"real": server.port, "bare": bare_port})
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until told to stop
        session = profiler.store.running[SESSION]
        conn.send({"session_frames": session.frames_collected})
        await bare.stop(0)
        await server.stop()
        await profiler.stop()
        db.close()


def _frames(agent: str, instance: str, first_seq: int, n: int,
            sample: dict[str, Any]) -> list[bytes]:
    from gswarm_jupyter.profiler.convert import frame_to_proto

    return [
        frame_to_proto({**sample, "node": agent, "instance": instance, "seq": seq,
                        "sessions": [SESSION]}).SerializeToString()
        for seq in range(first_seq, first_seq + n)
    ]


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc; clock-tick resolution)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _ingest(ports: dict[str, int], agents_n: int, per_stream: int, rounds_n: int,
                  server_pid: int) -> tuple[float, float, int, int, float, float]:
    """(real frames/s, bare frames/s, message bytes, frames accepted by the real service, and the
    servers' process CPU microseconds per frame in real and in bare rounds)."""
    import grpc

    from gswarm_jupyter.profiler._proto import profiler_pb2 as pb
    from gswarm_jupyter.profiler.samplers import NodeSampler

    sample = NodeSampler("bench").sample([SESSION])
    real = grpc.aio.insecure_channel(f"127.0.0.1:{ports['real']}")
    bare = grpc.aio.insecure_channel(f"127.0.0.1:{ports['bare']}")
    stub_connect = real.unary_unary(
        "/gswarm.v1.ProfilerService/Connect",
        request_serializer=pb.ConnectRequest.SerializeToString,
        response_deserializer=pb.ConnectResponse.FromString,
    )
    real_stream = real.stream_unary(
        REAL_METHOD, response_deserializer=pb.StreamMetricsResponse.FromString
    )
    bare_stream = bare.stream_unary(BARE_METHOD)
    agents = []
    for i in range(agents_n):
        hello = await stub_connect(
            pb.ConnectRequest(name=f"agent{i}", hostname="bench", instance=f"inst{i}"),
            metadata=AUTH,
        )
        agents.append(hello.node_id)
    # every round's frames made before any is timed: fresh sequence numbers for each round
    batches = [
        [_frames(a, f"inst{i}", 1 + r * per_stream, per_stream, sample)
         for i, a in enumerate(agents)]
        for r in range(rounds_n + 1)
    ]
    size = len(batches[0][0][0])
    accepted = 0

    async def messages(items: list[bytes]) -> Any:
        for item in items:
            yield item

    cpu: dict[str, list[float]] = {"real": [], "bare": []}

    async def timed(call: Any, streams: list[list[bytes]], metadata: Any,
                    kind: str) -> tuple[float, list[Any]]:
        n = sum(len(s) for s in streams)
        cpu0, start = _process_cpu_s(server_pid), time.perf_counter()
        answers = await asyncio.gather(*(call(messages(s), metadata=metadata) for s in streams))
        wall = time.perf_counter() - start
        cpu[kind].append((_process_cpu_s(server_pid) - cpu0) / n * 1e6)
        return n / wall, answers

    rounds = iter(batches)

    async def real_round() -> float:
        nonlocal accepted
        rate, answers = await timed(real_stream, next(rounds), AUTH, "real")
        assert all(a.duplicates == 0 for a in answers), answers
        accepted += sum(a.accepted for a in answers)
        return rate

    async def bare_round() -> float:
        rate, answers = await timed(bare_stream, batches[0], None, "bare")
        assert sum(int(a) for a in answers) == agents_n * per_stream
        return rate

    await real_round(), await bare_round()  # warm-up
    reals, bares = [], []
    for _ in range(rounds_n):
        reals.append(await real_round())
        bares.append(await bare_round())
    await real.close()
    await bare.close()
    return (statistics.median(reals), statistics.median(bares), size, accepted,
            statistics.median(cpu["real"][1:]), statistics.median(cpu["bare"][1:]))


def _server_costs(n: int = 20_000) -> dict[str, float]:
    """Microseconds per frame of each step the real service adds to the bare server's, in this
    process: decode the message, ingest it (dedup on the message's instance and sequence
    number, kept as the client's latest, held for the session as the bytes it came as), and
    write it (the session's held records, on the flush thread in the server); then what a
    reader pays later: the session's frames read back as dicts (download, summary)."""
    from gswarm_jupyter.core.db import Database
    from gswarm_jupyter.profiler._proto import profiler_pb2 as pb
    from gswarm_jupyter.profiler.samplers import NodeSampler
    from gswarm_jupyter.profiler.service import Profiler

    sample = NodeSampler("bench").sample([SESSION])
    raw = _frames("costs", "i", 1, n, sample)
    costs: dict[str, float] = {}

    def step(name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        out = fn()
        costs[name] = (time.perf_counter() - start) / n * 1e6
        return out

    async def measure() -> None:
        with tempfile.TemporaryDirectory(prefix="gswarm-bench-") as tmp:
            db = Database(Path(tmp) / "state.sqlite3")
            db.migrate()
            profiler = Profiler(db, Path(tmp) / "profiler")
            await profiler.start_session(SESSION, SAMPLE_PERIOD_MS)
            node, _, _ = profiler.connect_agent("costs", "bench", "i", [])
            state = profiler.agent(node)
            messages = step("decode", lambda: [pb.Frame.FromString(b) for b in raw])
            ingest = profiler.hub.ingest_message
            step("ingest", lambda: [ingest(state, m) for m in messages])
            step("write", profiler.store.flush)
            step("read back later", lambda: sum(1 for _ in profiler.frames(SESSION)))
            profiler.store.close()
            db.close()

    asyncio.run(measure())
    return costs


WHERE_INGEST_GOES = (
    "History, measured in the server with 100 streams: at first the frame dict, the ingest and a "
    "JSON line per frame on the flush thread cost 8, 5 and 9 us per frame and frame dicts held "
    "until the flush set off full collections of the server heap; encoding each line as it was "
    "appended and frame_from_proto reading only the fields set cut the extra CPU 26.9 -> 19.6 "
    "us (A/B, 4 rounds, load ~20-26). The idle run of b992f4e still had 4 streams 0.738 and 100 "
    "streams 0.612: real 52.5 us per frame against bare 29.5, in-process decode 1.2, frame dict "
    "5.0, ingest 5.7 (dedup, latest, a JSON line per frame), write 0.7. Since then no dict and "
    "no JSON per frame on the ingest path: an agent's frame stays its protobuf message "
    "(deduplicated on the message's own instance and seq, kept as the client's latest and made "
    "a dict only when someone reads it, or at once while there are subscribers) and each "
    "session holds it as a JSON Lines line {\"gswarm.v1.Frame\":\"<base64>\"} joined from its "
    "bytes; the frame's dict, with the session's metrics and tags, is made when the session is "
    "read (downloads, summaries: in-process about what json.loads of the old lines cost, 22.5 vs "
    "22.8 us per frame at load ~12). A/B of b992f4e against it, two runs of 5 interleaved rounds "
    "of this benchmark, each side from its own worktree, medians of the 10 rounds at load 10-17 "
    "on 2 cores: 100 streams ratio 0.699 -> 0.944, the servers' CPU per frame real 59.3 -> 45.5 "
    "us (bare 36.5 and 35.8; extra over bare 20.5 -> 9.2, CPU ratio 0.63 -> 0.79); 4 streams "
    "0.724 -> 0.829, real 74.5 -> 60.5 us (bare 51.0 and 53.0; extra 23.0 -> 9.0). What is left "
    "of the extra, per frame and in Python: the decode (the bare server parses nothing), and in "
    "the ingest reading the message's repeated sessions field through upb (each access to a "
    "repeated or sub-message field builds a wrapper, ~0.5 us under load), the message serialized "
    "once for its sessions, the session line and the latest kept."
)


def grpc_ingest(agents: int = AGENTS, per_stream: int = FRAMES_PER_STREAM,
                rounds: int = ROUNDS, name: str = "grpc_ingest_frames_per_second") -> Result:
    ctx = multiprocessing.get_context("spawn")  # no fork under gRPC's threads
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("the benchmark's gRPC servers did not start")
        ports = parent.recv()
        real_fps, bare_fps, size, accepted, real_cpu, bare_cpu = asyncio.run(
            _ingest(ports, agents, per_stream, rounds, server.pid))
        parent.send("stop")
        written = parent.recv()["session_frames"] if parent.poll(30) else None
    finally:
        server.join(30)
        if server.is_alive():
            server.terminate()
    sent = (rounds + 1) * agents * per_stream
    assert accepted == sent and written == sent, (accepted, written, sent)
    costs = _server_costs()
    where = ", ".join(f"{k} {v:.1f}" for k, v in costs.items())
    return Result(
        name=name,
        value=real_fps,
        unit="frames/s",
        baseline="bare grpc.aio client-stream server, same message bytes, same run",
        baseline_value=bare_fps,
        ratio=real_fps / bare_fps,
        goal=">= 0.7",
        note=(
            f"{agents} concurrent client streams (each its own connected agent) of "
            f"{per_stream} real frames ({size} B each) per round, median of {rounds} "
            f"interleaved rounds; no frame lost: all {sent:,} frames sent accepted once "
            f"(duplicates 0) and {written:,} written to the running session; client streams "
            "from one process, both servers in one child process, loopback. Where the "
            f"real service's extra time goes, us per frame measured in-process: {where} "
            f"(the bare server: {1e6 / bare_fps:.1f} us per frame end to end). The servers' "
            f"process CPU per frame (median of the rounds): real {real_cpu:.1f} us, bare "
            f"{bare_cpu:.1f} us (CPU ratio {bare_cpu / real_cpu:.2f}). {WHERE_INGEST_GOES} "
            "The machine's "
            f"load average {os.getloadavg()[0]:.1f} after these rounds; under other load the "
            "ratio swings between runs (0.37-1.07 seen for 4 streams on the same code)"
        ),
    )


def run() -> list[Result]:
    return [
        sampler_overhead(),
        grpc_ingest(),
        grpc_ingest(MANY_AGENTS, MANY_FRAMES_PER_STREAM, MANY_ROUNDS,
                    "grpc_ingest_100_agent_streams_frames_per_second"),
    ]
