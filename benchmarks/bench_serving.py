"""Serving through the whole HTTP stack against the same model's forward pass in this process.

The offered load is `wrk` (C, one thread, a process of its own: `wrkload.py`, `serve.lua`), not
client threads in this process, which would take the cores the server and worker are measured on.

- Served throughput: 32 wrk keep-alive connections, each sending its next one-row
  `POST /gswarm/compute/v1/inference` when the last was answered; rows per second against
  `predict` at batch 32 on the same weights (`init_params` of the same builtin URL), in
  interleaved rounds.
- Batching gain: the same load against a service of the same model with `max_batch_size=1`.
- Latency overhead (`lone_request`, also bench_litserve's lone figure): p50 of one wrk
  connection's one-row requests minus the p50 of the direct one-row forward measured right after
  it (`lone_parts`, which also measures the pieces the served figure is split into), in ms;
  against the default service (max_batch_size 32; a lone row leaves at once, company is gathered
  only while a batch computes) and against a `max_batch_size=1` one.
- The floor under all three (`bare_serving.py`, in the same server): a bare Jupyter route that
  runs the same forward on a compute thread of the server's own process, batched the same way,
  with nothing of gswarm on the way, measured after gswarm's figures (its first forward brings
  torch into the server's process). What it does under the same loads is what this machine
  allows a route of a Jupyter server that keeps the forward off its event loop."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from gswarm_jupyter.cluster.runtime.cluster import ClusterConfig
from gswarm_jupyter.testing import LiveServer

from .harness import ROOT, Result
from .wrkload import Run, available, wrk

# Big enough that the forward pass, not the HTTP stack, is what batching saves (1 row: ~10 ms
# of reading 33 M float32 weights; 32 rows: barely more), as for the models serving is for.
MODEL = "builtin://mlp?in=256&hidden=4096,4096&out=16&seed=0"
TINY = "builtin://mlp?in=8&hidden=16,16&out=4&seed=0"
CLIENTS = 32  # wrk's connections
SECONDS = 5  # one round of a wrk load
WARM_SECONDS = 2
ROUNDS = 3
LONE_SECONDS = 5  # the lone client's wrk run
COMPUTE = "/gswarm/compute/v1/"
WORKER_THREADS = ClusterConfig().threads_per_node  # torch threads of a gswarm worker process
# Measured apart (2026-11-30, commit 662cdf2), not in this run: where the gateway-to-worker hop
# goes, from wall-clock stamps on both sides of a real ServiceActor and ReplicaChannel.
HOP_FACTS = (
    "Where the gateway-to-worker hop goes, measured apart (a real ServiceActor and "
    "ReplicaChannel on a one-worker LocalCluster, a tiny model so the forward is ~0, wall-clock "
    "stamps on both sides, 8 rounds x 200 requests, load average ~13 on 2 cores): gateway to "
    "the worker's actor 0.41 ms, in the worker outside the batcher 0.07 ms, the worker's answer "
    "back to the gateway 0.56 ms (Dask's actor_execute pickles it through to_serialize), the "
    "batcher around a ~0 forward 0.53 ms (queue, hand-over to its compute thread and back: two "
    "thread wake-ups); Dask's own rpc round trip of a small value to an async actor method, "
    "interleaved, 0.75 ms: the hop is ~0.3 ms above Dask's comm floor, the rest is that floor "
    "(two process wake-ups, Tornado streams, msgpack framing), which only a comm of our own "
    "would cut. Cut and measured (interleaved A/B in one cluster, 15 rounds of 200, before and "
    "after alternating, load ~12): the channel's arguments as ToPickle instead of to_serialize "
    "(dump+load of one row 57 -> 24 us) and a lone request awaited without gather on the worker "
    "and in the batcher: hop 1.375 -> 1.117 ms, 0.195 ms less per round, 14 of 15 rounds faster; "
    "the batcher's compute thread answering the loop in one call_soon_threadsafe: its own cost "
    "0.110 -> 0.094 ms (in-process, 20 of 20 rounds). That LocalCluster spoke plain TCP; the "
    "server's embedded cluster speaks mutual TLS (Security.temporary), and a TCP-against-TLS run "
    "at load ~14 was too noisy to separate them. Sampled with py-spy in a LiveServer under one "
    "wrk connection (tiny model, load ~13): of the server process's samples, InferenceHandler.post "
    "12%, TLS writes of the Dask comm (SSLIOStream.write_to_fd) 9%, GswarmHandler.prepare 5%, "
    "Jupyter's IdentityProvider.set_login_cookie (an HMAC-signed cookie set on every "
    "token-authenticated request) 2.5%, audit and access records 2.3%, and Dask's periodic "
    "callbacks on the same event loop (system monitors, the nanny's 100 ms memory monitor, work "
    "stealing, scheduler broadcasts) about 10%. "
    "Since then the gateway reaches a replica on its own host over a lane of its own "
    "(cluster/serving/lane.py: a Unix socket, length-prefixed pickles, no TLS or Dask framing), "
    "the Dask comm staying for other hosts. Measured apart at f55cf91 (a real ServiceActor on a "
    "one-worker LocalCluster speaking mutual TLS as the embedded cluster does, the tiny model, "
    "one request at a time, 10 interleaved rounds of 200, load ~1.5): the whole round trip "
    "through the channel, batcher and ~0 forward 0.69 ms over the lane against 1.68 ms over the "
    "Dask comm (medians of the rounds), the lane faster in 10 of 10. In the server under the "
    "32-connection 8-row load, py-spy had put Dask's send_recv at 14% of the server's samples "
    "and its comm handling at 9% of the worker's; with the lane both are gone from the profile"

)


def _direct(url: str):
    """The model's torch module on the builtin URL's weights, and its input width."""
    from gswarm_kernels import init_params, parse_builtin_url
    from gswarm_kernels.torch_models import build_module

    spec = parse_builtin_url(url)
    module = build_module(spec.arch, spec.config, init_params(spec.arch, spec.config, spec.seed))
    return module, spec.config["in"]


def _timed(fn, n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _l3_bytes() -> int:
    """The last-level cache's size (Linux sysfs), 256 MiB when it cannot be read."""
    size = Path("/sys/devices/system/cpu/cpu0/cache/index3/size")
    try:
        text = size.read_text().strip().upper()
        return int(text.rstrip("KMG")) * {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1], 1)
    except (OSError, ValueError):
        return 256 * 2**20


def lone_parts(module: Any, url: str, row: list[float], threads: int) -> dict[str, float]:
    """Parts of a lone one-row request measured in this process (ms, p50s), to split the served
    figures: the body's JSON decode and validation, the answer's JSON encode, the batcher's own
    cost (queue, hand-over to its compute thread and back, over a runner of `url`), and the
    forward pass of `module` (the direct baseline's) with its weights hot in the caches (back to
    back: `forward_hot` is the baseline every lone figure subtracts), cold (after reading twice
    the last-level cache) and spaced (after 5 ms idle), on `threads` torch threads."""
    import asyncio

    import torch
    from gswarm_kernels import init_params, parse_builtin_url
    from gswarm_kernels.torch_infer import predict

    from gswarm_jupyter.backends.base import GenerateOptions
    from gswarm_jupyter.backends.batcher import Batcher
    from gswarm_jupyter.backends.registry import load_runner
    from gswarm_jupyter.core.serving_api import InferenceRequest
    from gswarm_jupyter.core.validation import validate

    body = json.dumps({"model_id": "m", "input_data": [row]})
    answer = {"success": True, "data": {"output_data": [[0.123456789] * 16],
                                        "inference_time": 0.01}}
    parts = {
        "json": 1000 * statistics.median(_timed(lambda: (json.loads(body), json.dumps(answer)),
                                                300)),
        "validate": 1000 * statistics.median(
            _timed(lambda: validate(InferenceRequest, json.loads(body)), 300)),
    }
    default = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        spec = parse_builtin_url(url)
        runner = load_runner("torch", spec.arch, spec.config,
                             init_params(spec.arch, spec.config, spec.seed), "cpu")
        options = GenerateOptions()
        x1 = np.asarray([row], dtype=np.float32)
        junk = np.ones(2 * _l3_bytes() // 8)

        def cold() -> float:
            junk.sum()
            return _timed(lambda: predict(module, x1), 1)[0]

        def spaced() -> float:  # after 5 ms idle, as lone requests are spaced: torch's threads
            time.sleep(0.005)  # have gone to sleep by then
            return _timed(lambda: predict(module, x1), 1)[0]

        # The forwards first, on this thread: the batcher's compute thread below builds an
        # OpenMP team of its own, which would then share the cores with this thread's.
        parts["forward_hot"] = 1000 * _forward_hot(module, row, threads)
        parts["forward_cold"] = 1000 * statistics.median(cold() for _ in range(30))
        parts["forward_spaced"] = 1000 * statistics.median(spaced() for _ in range(100))
        inside: list[float] = []

        @contextlib.contextmanager
        def timed_turn() -> Iterator[None]:  # entered around each forward on the compute thread
            start = time.perf_counter()
            yield
            inside.append(time.perf_counter() - start)

        async def own() -> list[float]:
            batcher = Batcher(runner, 32, 2.0, turn=timed_turn)
            times = []
            for _ in range(230):
                start = time.perf_counter()
                await batcher.submit([row], options)
                times.append(time.perf_counter() - start - inside[-1])
            batcher.close()
            return times[30:]

        parts["batcher_own"] = 1000 * statistics.median(asyncio.run(own()))
    finally:
        torch.set_num_threads(default)
    return parts


def _forward_hot(module: Any, row: list[float], threads: int) -> float:
    """The direct one-row forward, back to back, on `threads` torch threads (s, p50)."""
    import torch
    from gswarm_kernels.torch_infer import predict

    default = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x1 = np.asarray([row], dtype=np.float32)
        return statistics.median(_timed(lambda: predict(module, x1), 200))
    finally:
        torch.set_num_threads(default)


@dataclass
class Lone:
    """One client's one-row requests, each sent when the last was answered (wrk, 1 connection),
    and where their milliseconds go."""

    run: Run  # wrk's figures
    inside: float  # p50 of the server's inference_time (s): gateway, channel, worker, batcher
    in_service: float  # p50 of the service's own latency (s): batcher queue, compute thread
    parts: dict[str, float]  # lone_parts, measured right after the run (ms)
    threads: int

    @property
    def direct(self) -> float:
        """The baseline: the direct one-row forward, hot, on the worker's threads (s)."""
        return self.parts["forward_hot"] / 1000

    @property
    def overhead_ms(self) -> float:
        return (self.run.p50 - self.direct) * 1000

    def note(self) -> str:
        p, ms = self.parts, 1000
        return (
            f"p50 {self.run.p50 * ms:.2f} ms over {self.run.requests:,} requests from one wrk "
            f"connection (C, its own process, {LONE_SECONDS} s) minus the direct one-row forward "
            f"{p['forward_hot']:.2f} ms (p50, back to back, this process, the same weights, "
            f"{self.threads} torch threads, measured right after the run) = "
            f"{self.overhead_ms:.2f} ms. Where the milliseconds go (p50s): HTTP, "
            f"authentication, audit record, validation and JSON "
            f"{(self.run.p50 - self.inside) * ms:.2f} ms (wrk's p50 minus the server's "
            f"inference_time; of which JSON decode and encode {p['json']:.2f} ms and body "
            f"validation {p['validate']:.2f} ms, measured in this process); gateway to the "
            f"replica's worker and back over its same-host lane "
            f"{(self.inside - self.in_service) * ms:.2f} ms (inference_time minus the service's "
            f"own latency); in the service {self.in_service * ms:.2f} ms: the batcher's queue "
            f"and hand-over to its compute thread and back {p['batcher_own']:.2f} ms (measured "
            f"in this process around the same weights), the rest the forward in the worker, "
            f"which costs more than the back-to-back baseline: the direct forward takes "
            f"{p['forward_cold']:.2f} ms after reading twice the last-level cache and "
            f"{p['forward_spaced']:.2f} ms after 5 ms idle (torch's threads asleep); a lone "
            f"request's forward follows the HTTP stack and the comm, which run over the same "
            f"caches and cores"
            + ("" if self.run.p50 >= self.direct else
               ". Below zero: the direct forward ran slower than the served one, i.e. other "
               "work on the machine moved between the measurements; the figure means nothing "
               "in such a run"))


def lone_request(server: LiveServer, body: Path, service_id: str, module: Any, row: list[float],
                 threads: int) -> Lone:
    """The lone-request figure of the service `service_id` (the model of `MODEL`, whose direct
    module is `module`), asked with `body` (one row, `row`); its own service, so its latency
    counters are lone ones. The one measurement both serving benchmarks report."""
    url = server.url.rstrip("/") + COMPUTE + "inference"
    wrk(url, body, 1, 1, 1, server.token)  # warm-up
    run = wrk(url, body, 1, 1, LONE_SECONDS, server.token)
    with httpx.Client(headers={**server.headers, "Content-Type": "application/json"},
                      timeout=300) as client:
        inside = []
        for _ in range(100):
            r = client.post(url, content=body.read_bytes())
            assert r.status_code == 200, r.text
            inside.append(r.json()["data"]["inference_time"])
        status = client.get(server.url + f"gswarm/api/v1/services/{service_id}/status").json()
    parts = lone_parts(module, MODEL, row, threads)
    return Lone(run, statistics.median(inside), status["data"]["latency_p50"], parts, threads)


@dataclass
class Floor:
    """The bare route's figures (bare_serving.py): one-row rows/s under the served load batched
    and one request a forward, and one connection's p50 with the direct forward right after."""

    batched: float
    unbatched: float
    lone_p50: float  # s
    lone_direct: float  # s

    @property
    def lone_overhead_ms(self) -> float:
        return (self.lone_p50 - self.lone_direct) * 1000

    def lone_note(self, overhead_ms: float) -> str:
        added = f"gswarm's path adds {overhead_ms - self.lone_overhead_ms:.2f} ms to it"
        verdict = (f"the floor itself is over the goal: no route of this server built so (the "
                   f"token check, JSON, one hop to a compute thread: the forward never on the "
                   f"event loop) meets it on this machine; {added}"
                   if self.lone_overhead_ms > 1 else
                   f"the goal is within reach of this machine only on a path that short; {added}")
        return (f"The floor, measured the same way on a bare Jupyter route in the same server "
                f"(benchmarks/bare_serving.py: Jupyter's token check, JSON, the same forward on "
                f"a compute thread of the server's own process, no lane, no session, audit or "
                f"metrics): p50 {self.lone_p50 * 1000:.2f} ms minus the direct forward "
                f"{self.lone_direct * 1000:.2f} ms right after it = "
                f"{self.lone_overhead_ms:.2f} ms of overhead, against gswarm's "
                f"{overhead_ms:.2f} ms: {verdict} (the lane to the worker process and the "
                f"service around the batcher). On a GPU node the forward's CPU start "
                f"(threads waking, caches) leaves the CPU and the floor keeps Jupyter's HTTP and "
                f"one thread hop; what meets the goal there is that short path: the replica in "
                f"the gateway's process on a one-node deployment (not built)")

    def gain_note(self, unbatched: float) -> str:
        needed = 4 * unbatched
        verdict = ("the goal cannot be met here: a route with nothing but Jupyter's HTTP and "
                   "the forward on the way, batched as gswarm batches, serves fewer one-row "
                   "requests of this model" if self.batched < needed else
                   "the floor leaves the goal within reach")
        return (f"The floor under the same load (benchmarks/bare_serving.py, a bare Jupyter "
                f"route running the same forward on a compute thread of the server's own "
                f"process, batched the same way, no lane, session, audit or metrics): "
                f"{self.batched:,.0f} rows/s batched, {self.unbatched:,.0f} one request a "
                f"forward (its own gain {self.batched / self.unbatched:.2f}). The goal needs "
                f"{needed:,.0f} rows/s batched (4 x gswarm's unbatched {unbatched:,.0f}) and the "
                f"floor serves {self.batched:,.0f}: {verdict}; both services pay every one-row "
                f"request's HTTP cost on the same 2 cores as the forward. On a GPU node a "
                f"forward of 1 row and of 32 cost about the same, so the unbatched service "
                f"is bound by one forward's latency per request and the batched one by the "
                f"requests the server answers a second: the gain reaches 4 where a forward "
                f"costs more than ~4 requests' HTTP work (a transformer, a large MLP) or "
                f"requests carry more rows")


def one_row_ceiling(direct: float, tiny_served: float) -> str:
    """Whether the served/direct goal is within reach of one-row requests on this machine: half
    the direct rows/s against what the server answers for a model that costs microseconds."""
    half = direct / 2
    verdict = ("the goal cannot be met here with one row per request" if tiny_served < half
               else "that ceiling leaves the goal within reach")
    return (f"The goal needs {half:,.0f} one-row requests a second (half the direct figure); "
            f"under the same load this server answers {tiny_served:,.0f} a second for the tiny "
            f"model, which costs microseconds: {verdict}. On a GPU node the direct figure grows "
            f"and the per-request cost stays on the CPU: what meets the goal there is more rows "
            f"per request (serving_vs_litserve_8rows serves this model's 8-row requests, same "
            f"run)")


def run() -> list[Result]:
    if not available():
        print("bench_serving skipped: wrk is not installed (make bench installs it as root: "
              "apt-get install -y wrk)", flush=True)
        return []
    import torch
    from gswarm_kernels.torch_infer import predict

    load_before = os.getloadavg()[0]
    module, width = _direct(MODEL)
    tiny, tiny_width = _direct(TINY)
    threads = torch.get_num_threads()
    rng = np.random.default_rng(1)
    x32 = rng.standard_normal((CLIENTS, width), dtype=np.float32)
    tx = rng.standard_normal((CLIENTS, tiny_width), dtype=np.float32)
    row = x32[0].tolist()
    loads: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="gswarm-bench-") as tmp:
        folder = Path(tmp)
        services = (("bench-b32", MODEL, 32), ("bench-b1", MODEL, 1), ("bench-lone", MODEL, 32),
                    ("bench-lone-b1", MODEL, 1), ("bench-tiny", TINY, 32))
        bodies = {}
        for model_id, url, _ in services:
            bodies[model_id] = folder / f"{model_id}.json"
            data = (tx if url == TINY else x32)[:1].tolist()
            bodies[model_id].write_text(json.dumps({"model_id": model_id, "input_data": data}))
        server = LiveServer(
            folder / "gswarm", nodes=1,
            extra_args=["--GswarmApp.rate_limit_per_minute=1000000000",
                        "--GswarmApp.rate_limit_burst=1000000000",
                        "--ServerApp.jpserver_extensions={'benchmarks.bare_serving': True}"],
            extra_env={"PYTHONPATH": str(ROOT.parent), "GSWARM_BENCH_MODEL": MODEL,
                       "GSWARM_BENCH_THREADS": str(WORKER_THREADS)},
        )
        with server:
            http_client = httpx.Client(base_url=server.url.rstrip("/") + COMPUTE,
                                       headers=server.headers, timeout=300)
            for model_id, url, batch in services:
                r = http_client.post("models", json={"model_id": model_id, "model_path": url,
                                                     "max_batch_size": batch})
                assert r.status_code == 201, r.text
            service = {m["model_id"]: m["services"][0]
                       for m in http_client.get("models").json()["data"]["models"]}
            http_client.close()
            url = server.url.rstrip("/") + COMPUTE + "inference"

            bare = server.url.rstrip("/") + "/bench/serve/"  # + the batch limit in rows

            def served(model_id: str, seconds: float = SECONDS, at: str = url) -> float:
                loads.append(wrk(at, bodies[model_id], 1, CLIENTS, seconds, server.token))
                assert loads[-1].errors == 0, loads[-1].text()
                return loads[-1].rows_per_second

            def floor(limit: int, seconds: float = SECONDS) -> float:
                return served("bench-b32", seconds, f"{bare}{limit}")

            def direct_rate(n: int) -> float:
                default = torch.get_num_threads()
                torch.set_num_threads(n)
                try:
                    return 32 / statistics.median(_timed(lambda: predict(module, x32), 30))
                finally:
                    torch.set_num_threads(default)

            served("bench-b32", WARM_SECONDS), served("bench-b1", WARM_SECONDS)  # warm-up
            direct_rate(threads)
            # Interleaved rounds: whatever else loads the machine hits all of them alike.
            rounds = [(served("bench-b32"), served("bench-b1"), direct_rate(threads),
                       direct_rate(1)) for _ in range(ROUNDS)]
            batched, unbatched, direct_nt, direct_1t = (statistics.median(r[i] for r in rounds)
                                                        for i in range(4))
            # The baseline is the faster of torch's default threads and 1 thread: on a loaded
            # machine torch's own threads can slow it down.
            direct = max(direct_nt, direct_1t)
            status = httpx.get(server.url + f"gswarm/api/v1/services/{service['bench-b32']}/status",
                               headers=server.headers).json()["data"]
            histogram = status["batch_size_histogram"]

            served("bench-tiny", WARM_SECONDS)
            tiny_served = statistics.median(served("bench-tiny") for _ in range(ROUNDS))

            lone = lone_request(server, bodies["bench-lone"], service["bench-lone"], module, row,
                                WORKER_THREADS)
            lone_b1 = lone_request(server, bodies["bench-lone-b1"], service["bench-lone-b1"],
                                   module, row, WORKER_THREADS)
            # The floor last: its first forward brings torch into the server's process.
            answer = httpx.post(f"{bare}32", json={"input_data": x32[:3].tolist()},
                                headers=server.headers, timeout=300)
            assert answer.status_code == 200, answer.text
            assert np.allclose(answer.json()["output_data"], predict(module, x32[:3]),
                               rtol=1e-4, atol=1e-5), "the bare route answers other rows"
            floor(32, WARM_SECONDS), floor(1, WARM_SECONDS)
            floor_rounds = [(floor(32), floor(1)) for _ in range(ROUNDS)]
            floor_b32, floor_b1 = (statistics.median(r[i] for r in floor_rounds) for i in range(2))
            floor_lone = wrk(f"{bare}32", bodies["bench-lone"], 1, 1, LONE_SECONDS, server.token)
            floor_direct = _forward_hot(module, row, WORKER_THREADS)
            bare_floor = Floor(floor_b32, floor_b1, floor_lone.p50, floor_direct)

    torch.set_num_threads(1)  # a row's cost inside and outside a batch, on one core
    try:
        direct_one_1t = statistics.median(_timed(lambda: predict(module, x32[:1]), 100))
    finally:
        torch.set_num_threads(threads)
    tiny_direct = 32 / statistics.median(_timed(lambda: predict(tiny, tx), 200))

    batches = sum(histogram.values())
    mean_batch = sum(int(k) * v for k, v in histogram.items()) / max(1, batches)
    load = (f"wrk (C, 1 thread, its own process; benchmarks/serve.lua): {CLIENTS} keep-alive "
            f"connections, each sending its next one-row POST /inference when the last was "
            f"answered, {SECONDS} s per round after {WARM_SECONDS} s of warm-up; wrk used "
            f"{sum(r.cpu for r in loads):.1f} s of CPU over {sum(r.seconds for r in loads):.0f} "
            f"s of loads; the machine's load average {load_before:.1f} before the run, "
            f"{os.getloadavg()[0]:.1f} after it, on {os.cpu_count()} cores")
    return [
        Result(
            name="serving_throughput_vs_direct",
            value=batched, unit="rows/s",
            baseline="direct torch predict at batch 32, same weights, this process (faster of "
                     "default threads and 1 thread), same run",
            baseline_value=direct, ratio=batched / direct, goal=">= 0.5",
            note=(f"{MODEL}; {load}; median of {ROUNDS} rounds interleaved with the direct "
                  f"baseline and the max_batch_size=1 service; the service formed "
                  f"{batches} batches, mean {mean_batch:.1f} rows. The same load on a tiny "
                  f"{TINY} serves {tiny_served:,.0f} rows/s against {tiny_direct:,.0f} direct "
                  f"(ratio {tiny_served / tiny_direct:.3f}): with a model that costs microseconds "
                  f"the figure is the HTTP stack's per-request cost, not the model's. Where the "
                  f"time goes: the worker runs torch on {WORKER_THREADS} threads "
                  f"(ClusterConfig.threads_per_node); direct at batch 32 ran {direct_1t:,.0f} "
                  f"rows/s on 1 thread and {direct_nt:,.0f} on torch's default {threads}; the "
                  f"server's event loop and the worker share the machine's {os.cpu_count()} "
                  f"cores; each request pays the HTTP and gateway-to-worker cost of "
                  f"serving_latency_overhead_ms while batches are mean {mean_batch:.1f} rows, "
                  f"not 32. " + one_row_ceiling(direct, tiny_served) + f". The bare route "
                  f"(benchmarks/bare_serving.py, no gswarm code on the way, the forward in the "
                  f"server's own process) serves {bare_floor.batched:,.0f} rows/s under the same "
                  f"load, {bare_floor.batched / direct:.3f} of direct"),
        ),
        Result(
            name="serving_batching_gain",
            value=batched, unit="rows/s",
            baseline="the same wrk load on a max_batch_size=1 service of the same model, same run",
            baseline_value=unbatched, ratio=batched / unbatched, goal=">= 4",
            note=(f"{load}; interleaved rounds. The gain is bounded by how much cheaper a row "
                  f"is inside a batch: direct on 1 thread one row costs "
                  f"{direct_one_1t * 1000:.2f} ms, 32 rows {32 / direct_1t * 1000:.2f} ms "
                  f"(x{direct_one_1t * direct_1t:.1f} per row), and each unbatched request also "
                  f"pays the per-request gateway-to-worker cost alone. "
                  + bare_floor.gain_note(unbatched)),
        ),
        Result(
            name="serving_latency_overhead_ms",
            value=lone.run.p50 * 1000, unit="ms",
            baseline=f"direct one-row torch forward (p50, {WORKER_THREADS} threads, right after "
                     f"the lone run)",
            baseline_value=lone.direct * 1000, ratio=lone.overhead_ms, goal="<= 1",
            note=(f"default service (max_batch_size 32, batch_timeout_ms 2; a lone row leaves "
                  f"at once: the batcher gathers company only while a batch computes): "
                  f"{lone.note()}. Against a max_batch_size=1 service, measured the same way: "
                  f"{lone_b1.note()}. The same measurement (bench_serving.lone_request) gives "
                  f"serving_vs_litserve_lone_overhead_ms. "
                  f"{bare_floor.lone_note(lone.overhead_ms)}. {HOP_FACTS}"),
        ),
    ]
