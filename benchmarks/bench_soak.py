"""A soak: 64 concurrent clients against one real server for GSWARM_SOAK_SECONDS (default 60) s,
twice, mixing inference, data-pool chunk put/get/delete and queue submissions (async inference).

The load generator is `wrk` (C, one event loop per thread) driven by `soak.lua`, one connection per
wrk thread so each thread is one client sending its requests in sequence; it costs far less CPU
than the server it loads. Figures: the requests served and their p50/p99 latency, errors that are
not 429, and the memory (RSS) of the server process and its worker processes before, after the
first round and after the second, each measured once the queue has drained.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psutil

from gswarm_jupyter.testing import LiveServer

from .harness import ROOT, Result

SECONDS = int(os.environ.get("GSWARM_SOAK_SECONDS", "60"))
HEALTH_SECONDS = min(10, SECONDS)
CLIENTS = 64
MODEL = "builtin://mlp?in=64&hidden=256,256&out=8&seed=0"
MODEL_ID = "soak-mlp"
CHUNK_BYTES = 16 * 2**10
SCRIPT = ROOT / "soak.lua"
API = "gswarm/api/v1/"
COMPUTE = "gswarm/compute/v1/"
MIB = 2**20


@dataclass
class Round:
    """One wrk run: requests by "kind status", wrk's latency percentiles (s) and socket errors."""

    requests: int
    seconds: float
    p50: float
    p99: float
    counts: dict[str, int]
    socket_errors: dict[str, int]
    cpu: float  # seconds of CPU wrk itself used

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def throttled(self) -> int:
        return sum(n for key, n in self.counts.items() if key.endswith(" 429"))

    @property
    def errors(self) -> int:
        """Answers neither 2xx nor 429, and requests that got no answer at all."""
        failed = sum(n for key, n in self.counts.items()
                     if not key.split()[1].startswith("2") and not key.endswith(" 429"))
        return failed + sum(self.socket_errors.values())


def _wrk(server: LiveServer, seconds: int, args: list[str]) -> Round:
    """`soak.lua` under wrk: CLIENTS threads of one keep-alive connection each, for `seconds`."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["wrk", "-t", str(CLIENTS), "-c", str(CLIENTS), "-d", f"{seconds}s", "--timeout", "60s",
         "-s", str(SCRIPT), f"http://127.0.0.1:{server.port}", "--", server.token, *args],
        capture_output=True, text=True, check=True, timeout=seconds + 120,
    ).stdout
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime
    line = next(ln for ln in out.splitlines() if ln.startswith("SOAK-JSON "))
    figures = json.loads(line.removeprefix("SOAK-JSON "))
    return Round(figures["requests"], figures["duration_us"] / 1e6, figures["p50_us"] / 1e6,
                 figures["p99_us"] / 1e6, figures["counts"], figures["socket_errors"], cpu)


def _tree_rss(pid: int) -> tuple[int, int]:
    """Bytes resident in `pid` and every process under it (its Dask nanny and workers), and how
    many processes that is."""
    root = psutil.Process(pid)
    total, count = 0, 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
            count += 1
        except psutil.NoSuchProcess:
            pass
    return total, count


def _settle(client: httpx.Client, timeout: float = 600.0) -> float:
    """Wait until no queued task is pending or running; the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        counts = client.get(API + "queue").json()["data"]
        if counts["pending"] == 0 and counts["running"] == 0:
            time.sleep(2)  # answers in flight, sweeps, the workers' own bookkeeping
            return time.monotonic() - start
        time.sleep(0.5)
    raise RuntimeError(f"the queue did not drain within {timeout} s")


def _bodies(folder: Path) -> list[str]:
    """Files of the inference, chunk put and queue submission bodies, as soak.lua reads them."""
    rng = np.random.default_rng(0)
    row = rng.standard_normal(64, dtype=np.float32).round(4).tolist()
    infer = {"model_id": MODEL_ID, "input_data": [row]}
    put = {"data": base64.b64encode(rng.bytes(CHUNK_BYTES)).decode(), "type": "intermediate",
           "format": "bytes", "device": "node1:dram"}
    paths = []
    for name, body in (("infer", infer), ("put", put), ("queue", infer)):
        path = folder / f"{name}.json"
        path.write_text(json.dumps(body))
        paths.append(str(path))
    return paths


def _warm_up(client: httpx.Client, bodies: list[str]) -> None:
    """Every kind of request once, so that first-use costs are in the `before` figure."""
    infer, put, queue = (json.loads(Path(p).read_text()) for p in bodies)
    for _ in range(20):
        assert client.post(COMPUTE + "inference", json=infer).status_code == 200
        chunk = client.post(API + "data", json=put).json()["data"]["chunk_id"]
        assert client.get(API + f"data/{chunk}/content").status_code == 200
        assert client.delete(API + f"data/{chunk}").status_code == 200
        assert client.post(COMPUTE + "inference/async", json=queue).status_code == 202


def _counts(rounds: list[Round]) -> str:
    total: dict[str, int] = {}
    for r in rounds:
        for key, n in r.counts.items():
            total[key] = total.get(key, 0) + n
    return ", ".join(f"{key}: {n:,}" for key, n in sorted(total.items()))


def run() -> list[Result]:
    wrk = shutil.which("wrk")
    if wrk is None:
        print("bench_soak skipped: wrk is not installed (make bench installs it as root: "
              "apt-get install -y wrk)", flush=True)
        return []
    banner = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout
    version = banner.split("[")[0].strip()  # "wrk debian/4.1.0-3+b2"
    with tempfile.TemporaryDirectory(prefix="gswarm-bench-") as tmp:
        bodies = _bodies(Path(tmp))
        server = LiveServer(
            Path(tmp), nodes=1,
            extra_args=["--GswarmApp.rate_limit_per_minute=1000000000",
                        "--GswarmApp.rate_limit_burst=1000000000"],
        )
        with server:
            assert server.proc is not None
            client = httpx.Client(base_url=server.url, headers=server.headers, timeout=300)
            r = client.post(COMPUTE + "models", json={"model_id": MODEL_ID, "model_path": MODEL})
            assert r.status_code == 201, r.text
            _warm_up(client, bodies)
            _settle(client)
            health = _wrk(server, HEALTH_SECONDS, ["health"])
            _settle(client)
            before, processes = _tree_rss(server.proc.pid)
            first = _wrk(server, SECONDS, bodies)
            drain1 = _settle(client)
            after1, _ = _tree_rss(server.proc.pid)
            second = _wrk(server, SECONDS, bodies)
            drain2 = _settle(client)
            after2, _ = _tree_rss(server.proc.pid)
            history = client.get(API + "queue").json()["data"]
            client.close()

    rounds = [first, second]
    served = first.requests + second.requests
    rate = served / (first.seconds + second.seconds)
    errors = first.errors + second.errors
    throttled = first.throttled + second.throttled
    socket = {k: first.socket_errors[k] + second.socket_errors[k] for k in first.socket_errors}
    setup = (f"{CLIENTS} clients ({version}: {CLIENTS} threads x 1 keep-alive connection, "
             f"benchmarks/soak.lua), 2 rounds of {SECONDS} s against one server with 1 worker "
             f"process, rate limits raised out of the way; each client repeats POST /inference "
             f"(one row, {MODEL}), POST /data ({CHUNK_BYTES // 1024} KiB bytes chunk to "
             f"node1:dram), POST /inference/async (queued task), GET /data/{{id}}/content, "
             f"DELETE /data/{{id}}")
    return [
        Result(
            name="soak_requests_per_second",
            value=rate, unit="req/s",
            baseline=f"GET /health under the same {CLIENTS} wrk clients, same server",
            baseline_value=health.rate, ratio=rate / health.rate, goal=">= 0",
            note=(f"informational (no goal). {setup}. Served {served:,} requests "
                  f"({first.requests:,} + {second.requests:,}); latency p50/p99 "
                  f"{first.p50 * 1000:.1f}/{first.p99 * 1000:.1f} ms in the first round, "
                  f"{second.p50 * 1000:.1f}/{second.p99 * 1000:.1f} ms in the second; "
                  f"GET /health p50/p99 {health.p50 * 1000:.1f}/{health.p99 * 1000:.1f} ms over "
                  f"{HEALTH_SECONDS} s. wrk itself used {first.cpu + second.cpu:.1f} s of CPU "
                  f"over the {first.seconds + second.seconds:.0f} s of the rounds (the machine "
                  f"has {os.cpu_count()} cores). Queued tasks drained {drain1:.1f} s and "
                  f"{drain2:.1f} s after the rounds"),
        ),
        Result(
            name="soak_non429_errors",
            value=errors, unit="errors",
            baseline="none expected", baseline_value=0, ratio=errors, goal="<= 0",
            note=(f"answers neither 2xx nor 429, plus requests without an answer, over both "
                  f"rounds; 429s: {throttled}; socket errors {socket}. Answers by kind and "
                  f"status: {_counts(rounds)}"),
        ),
        Result(
            name="soak_memory_growth_ratio",
            value=after2 / MIB, unit="MiB",
            baseline="the same processes' RSS after the first round",
            baseline_value=after1 / MIB, ratio=after2 / after1, goal="<= 1.10",
            note=(f"summed RSS of the server process and the {processes - 1} processes under it "
                  f"(Dask nanny, worker, helpers), each figure taken once the queue had drained: "
                  f"{before / MIB:,.0f} MiB before the soak (model loaded, every kind of request "
                  f"warmed up), {after1 / MIB:,.0f} MiB after the first round, "
                  f"{after2 / MIB:,.0f} MiB after the second. A round stops its clients mid-cycle, "
                  f"leaving up to {CLIENTS} chunks ({CLIENTS * CHUNK_BYTES / MIB:.0f} MiB) "
                  f"undeleted. Finished tasks kept in memory at "
                  f"the end: {history['completed'] + history['failed'] + history['cancelled']:,} "
                  f"(GswarmApp.task_history_max bounds them, default 10,000)"),
        ),
    ]
