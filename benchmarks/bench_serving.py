"""Serving through the whole HTTP stack against the same model's forward pass in this process.

- Served throughput: 32 client threads, each with its own keep-alive connection, send one row per
  `POST /gswarm/compute/v1/inference`; rows per second against `predict` at batch 32 on the same
  weights (`init_params` of the same builtin URL), in interleaved rounds.
- Batching gain: the same load against a service of the same model with `max_batch_size=1`.
- Latency overhead: p50 of one-row `POST /inference` from one client minus the p50 of the direct
  one-row forward call, in ms; against the default service (max_batch_size 32; a lone row
  leaves at once, company is gathered only while a batch computes) and against the
  `max_batch_size=1` one. `lone_parts` measures, in this process, the pieces the served figures
  are split into.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np

from gswarm_jupyter.cluster.runtime.cluster import ClusterConfig
from gswarm_jupyter.testing import LiveServer

from .harness import Result

# Big enough that the forward pass, not the HTTP stack, is what batching saves (1 row: ~10 ms
# of reading 33 M float32 weights; 32 rows: barely more), as for the models serving is for.
MODEL = "builtin://mlp?in=256&hidden=4096,4096&out=16&seed=0"
TINY = "builtin://mlp?in=8&hidden=16,16&out=4&seed=0"
CLIENTS = 32
PER_CLIENT = 20
ROUNDS = 3
LATENCY_REQUESTS = 300
COMPUTE = "/gswarm/compute/v1/"
WORKER_THREADS = ClusterConfig().threads_per_node  # torch threads of a gswarm worker process


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


def lone_parts(url: str, row: list[float], threads: int) -> dict[str, float]:
    """Parts of a lone one-row request measured in this process (ms, p50s), to split the served
    figures: the body's JSON decode and validation, the answer's JSON encode, the batcher's own
    cost (queue, hand-over to its compute thread and back, over `runner.run`), and the forward
    pass with its weights hot in the caches (back to back), cold (after reading twice the
    last-level cache) and spaced (after 5 ms idle), on `threads` torch threads."""
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
        module = runner.module
        options = GenerateOptions()
        x1 = np.asarray([row], dtype=np.float32)
        junk = np.ones(2 * _l3_bytes() // 8)

        def cold() -> float:
            junk.sum()
            return _timed(lambda: predict(module, x1), 1)[0]

        def spaced() -> float:  # after 5 ms idle, as lone requests are spaced: torch's threads
            time.sleep(0.005)  # have gone to sleep by then
            return _timed(lambda: predict(module, x1), 1)[0]

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
        parts["forward_hot"] = 1000 * statistics.median(_timed(lambda: predict(module, x1), 200))
        parts["forward_cold"] = 1000 * statistics.median(cold() for _ in range(30))
        parts["forward_spaced"] = 1000 * statistics.median(spaced() for _ in range(100))
    finally:
        torch.set_num_threads(default)
    return parts


class Load:
    """CLIENTS threads with keep-alive connections; `rate(model)` is one round's rows per second."""

    def __init__(self, server: LiveServer, width: int) -> None:
        self.port = server.port
        self.headers = {"Authorization": f"Bearer {server.token}",
                        "Content-Type": "application/json"}
        rng = np.random.default_rng(1)
        self.rows = [rng.standard_normal(width, dtype=np.float32).tolist() for _ in range(CLIENTS)]
        self.conns = [http.client.HTTPConnection("127.0.0.1", self.port) for _ in range(CLIENTS)]

    def rate(self, model_id: str) -> float:
        bodies = [json.dumps({"model_id": model_id, "input_data": [row]}) for row in self.rows]
        start = threading.Barrier(CLIENTS + 1)
        failures: list[str] = []

        def client(i: int) -> None:
            conn = self.conns[i]
            start.wait()
            for _ in range(PER_CLIENT):
                conn.request("POST", COMPUTE + "inference", bodies[i], self.headers)
                response = conn.getresponse()
                body = response.read()
                if response.status != 200:
                    failures.append(f"{response.status} {body[:200]!r}")

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        start.wait()
        began = time.perf_counter()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - began
        assert not failures, failures[:3]
        return CLIENTS * PER_CLIENT / elapsed

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


def _latency(server: LiveServer, model_id: str, row: list[float]) -> tuple[float, float]:
    """p50 of one client's one-row requests (s), and p50 of the server's `inference_time`."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port)
    headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    body = json.dumps({"model_id": model_id, "input_data": [row]})
    inside: list[float] = []

    def call() -> None:
        conn.request("POST", COMPUTE + "inference", body, headers)
        response = conn.getresponse()
        data = json.loads(response.read())
        assert response.status == 200, data
        inside.append(data["data"]["inference_time"])

    _timed(call, 30)  # warm-up
    inside.clear()
    outside = statistics.median(_timed(call, LATENCY_REQUESTS))
    conn.close()
    return outside, statistics.median(inside)


def run() -> list[Result]:
    import torch
    from gswarm_kernels.torch_infer import predict

    module, width = _direct(MODEL)
    tiny, tiny_width = _direct(TINY)
    with tempfile.TemporaryDirectory(prefix="gswarm-bench-") as tmp:
        server = LiveServer(
            Path(tmp), nodes=1,
            extra_args=["--GswarmApp.rate_limit_per_minute=1000000000",
                        "--GswarmApp.rate_limit_burst=1000000000"],
        )
        with server:
            http_client = httpx.Client(base_url=server.url.rstrip("/") + COMPUTE,
                                       headers=server.headers, timeout=300)
            for model_id, url, batch in (("bench-b32", MODEL, 32), ("bench-b1", MODEL, 1),
                                         ("bench-lat", MODEL, 1), ("bench-tiny", TINY, 32)):
                r = http_client.post("models", json={"model_id": model_id, "model_path": url,
                                                     "max_batch_size": batch})
                assert r.status_code == 201, r.text
            service = {m["model_id"]: m["services"][0]
                       for m in http_client.get("models").json()["data"]["models"]}

            load = Load(server, width)
            x32 = np.asarray(load.rows, dtype=np.float32)

            def direct_rate(threads: int) -> float:
                default = torch.get_num_threads()
                torch.set_num_threads(threads)
                try:
                    return 32 / statistics.median(_timed(lambda: predict(module, x32), 30))
                finally:
                    torch.set_num_threads(default)

            threads = torch.get_num_threads()
            load.rate("bench-b32"), load.rate("bench-b1"), direct_rate(threads)  # warm-up
            # Interleaved rounds: whatever else loads the machine hits all of them alike.
            rounds = [(load.rate("bench-b32"), load.rate("bench-b1"), direct_rate(threads),
                       direct_rate(1)) for _ in range(ROUNDS)]
            batched, unbatched, direct_nt, direct_1t = (statistics.median(r[i] for r in rounds)
                                                        for i in range(4))
            # The baseline is the faster of torch's default threads and 1 thread: on a loaded
            # machine torch's own threads can slow it down.
            direct = max(direct_nt, direct_1t)
            load.close()
            status = httpx.get(server.url + f"gswarm/api/v1/services/{service['bench-b32']}/status",
                               headers=server.headers).json()["data"]
            histogram = status["batch_size_histogram"]

            tiny_load = Load(server, tiny_width)
            tiny_load.rate("bench-tiny")
            tiny_served = statistics.median(tiny_load.rate("bench-tiny") for _ in range(ROUNDS))
            tiny_load.close()

            row = load.rows[0]
            p50_b32, inside_b32 = _latency(server, "bench-b32", row)
            p50_b1, inside_b1 = _latency(server, "bench-lat", row)
            lat = httpx.get(server.url + f"gswarm/api/v1/services/{service['bench-lat']}/status",
                            headers=server.headers).json()["data"]
            in_service_b1 = lat["latency_p50"]
            http_client.close()

    x1 = x32[:1]
    direct_one = statistics.median(_timed(lambda: predict(module, x1), LATENCY_REQUESTS))
    torch.set_num_threads(1)  # a row's cost inside and outside a batch, on one core
    try:
        direct_one_1t = statistics.median(_timed(lambda: predict(module, x1), 100))
    finally:
        torch.set_num_threads(threads)
    parts = lone_parts(MODEL, row, threads)
    tx = np.asarray(tiny_load.rows, dtype=np.float32)
    tiny_direct = 32 / statistics.median(_timed(lambda: predict(tiny, tx), 200))

    batches = sum(histogram.values())
    mean_batch = sum(int(k) * v for k, v in histogram.items()) / max(1, batches)
    overhead = (p50_b32 - direct_one) * 1000
    overhead_b1 = (p50_b1 - direct_one) * 1000
    return [
        Result(
            name="serving_throughput_vs_direct",
            value=batched, unit="rows/s",
            baseline="direct torch predict at batch 32, same weights, this process (faster of "
                     "default threads and 1 thread)",
            baseline_value=direct, ratio=batched / direct, goal=">= 0.5",
            note=(f"{MODEL}, {CLIENTS} threads x {PER_CLIENT} one-row POST /inference each on "
                  f"keep-alive connections, median of {ROUNDS} rounds interleaved with the direct "
                  f"baseline; the service formed "
                  f"{batches} batches, mean {mean_batch:.1f} rows. The same load on a tiny "
                  f"{TINY} serves {tiny_served:,.0f} rows/s against {tiny_direct:,.0f} direct "
                  f"(ratio {tiny_served / tiny_direct:.3f}): with a model that costs microseconds "
                  f"the figure is the HTTP stack's per-request cost, not the model's. Where the "
                  f"time goes: the worker runs torch on {WORKER_THREADS} threads "
                  f"(ClusterConfig.threads_per_node); direct at batch 32 ran {direct_1t:,.0f} "
                  f"rows/s on 1 thread "
                  f"and {direct_nt:,.0f} on torch's default {threads}; the 32 client "
                  f"threads, the server's event loop and the worker share the machine's "
                  f"{os.cpu_count()} cores; and each request pays the HTTP and gateway-to-worker "
                  f"cost below (serving_latency_overhead_ms) while batches are mean "
                  f"{mean_batch:.1f} rows, not 32"),
        ),
        Result(
            name="serving_batching_gain",
            value=batched, unit="rows/s",
            baseline="the same load on a max_batch_size=1 service of the same model",
            baseline_value=unbatched, ratio=batched / unbatched, goal=">= 4",
            note=(f"interleaved rounds. The gain is bounded by how much cheaper a row is inside "
                  f"a batch: direct on 1 thread one row costs "
                  f"{direct_one_1t * 1000:.2f} ms, 32 rows {32 / direct_1t * 1000:.2f} ms "
                  f"(x{direct_one_1t * direct_1t:.1f} per row), and each unbatched request also "
                  f"pays the per-request gateway-to-worker cost alone"),
        ),
        Result(
            name="serving_latency_overhead_ms",
            value=p50_b32 * 1000, unit="ms",
            baseline="direct one-row torch forward (p50)", baseline_value=direct_one * 1000,
            ratio=overhead, goal="<= 1",
            note=(f"p50 of {LATENCY_REQUESTS} sequential one-row requests, default service "
                  f"(max_batch_size 32, batch_timeout_ms 2; a lone row leaves at once: the "
                  f"batcher gathers company only while a batch computes). Breakdown: "
                  f"server-measured inference_time p50 {inside_b32 * 1000:.2f} ms (gateway, "
                  f"worker call, batcher, forward), HTTP + auth + JSON "
                  f"{(p50_b32 - inside_b32) * 1000:.2f} ms (of which, measured in this process: "
                  f"JSON decode and encode {parts['json']:.2f} ms, body validation "
                  f"{parts['validate']:.2f} ms). The batcher's own cost (queue, hand-over to "
                  f"its compute thread and back) is {parts['batcher_own']:.2f} ms in this "
                  f"process; the direct forward {parts['forward_hot']:.2f} ms with its weights "
                  f"hot in the caches (the baseline), {parts['forward_cold']:.2f} ms after "
                  f"reading twice the last-level cache, {parts['forward_spaced']:.2f} ms after "
                  f"5 ms idle. "
                  f"Against a fresh max_batch_size=1 service: p50 "
                  f"{p50_b1 * 1000:.2f} ms, overhead {overhead_b1:.2f} ms = HTTP + auth + JSON "
                  f"{(p50_b1 - inside_b1) * 1000:.2f} ms + gateway to worker actor and back "
                  f"{(inside_b1 - in_service_b1) * 1000:.2f} ms + in the service (batcher "
                  f"queue, executor thread, forward) {in_service_b1 * 1000:.2f} ms, "
                  f"of which the 1-thread direct forward is {direct_one_1t * 1000:.2f} ms"),
        ),
    ]
