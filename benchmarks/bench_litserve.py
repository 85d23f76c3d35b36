"""gswarm's serving side by side with LitServe, the light Python model server, in one run.

Same machine, same weights (the large built-in MLP of bench_serving, its torch module saved with
`torch.save` for LitServe), the same forward pass (`gswarm_kernels.torch_infer.predict`) on the
same torch threads (the gswarm worker's: `ClusterConfig.threads_per_node`), the same batching
limit in rows (LitServe counts requests: its `max_batch_size` is 32 / rows per request), a 2 ms
batch wait, one LitServe worker on 127.0.0.1. gswarm is asked through
`POST /gswarm/compute/v1/inference` on the server's defaults (its owner's token is not throttled).

The offered load is `wrk` (C, one thread) with `serve.lua`: 32 keep-alive connections, each
sending its next request when the last one was answered, one row per request, then eight. Each
system is also run at its own best batch limit for eight rows (up to the 256 rows 32 connections
can offer). A lone client (one connection) gives each system's overhead over the direct forward.
Figures: rows/s, p50 and p99 latency, errors (answers not 2xx and socket errors).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np

from gswarm_jupyter.cluster.runtime.cluster import ClusterConfig
from gswarm_jupyter.testing import LiveServer, free_port

from .bench_serving import MODEL, _direct, _timed, lone_parts
from .harness import ROOT, Result

SECONDS = int(os.environ.get("GSWARM_SERVE_SECONDS", "10"))
WARM_SECONDS = 2
LONE_SECONDS = 5
CONNECTIONS = 32
MAX_ROWS = 32  # the batch limit in rows both systems get
WAIT_MS = 2.0
BEST_ROWS = (32, 256)  # the batch limits (rows) tried for each system's best at eight rows
THREADS = ClusterConfig().threads_per_node  # torch threads of a gswarm worker process
SCRIPT = ROOT / "serve.lua"
COMPUTE = "/gswarm/compute/v1/"


@dataclass
class Run:
    """One wrk run against one server."""

    rows_per_request: int
    requests: int
    seconds: float
    p50: float  # s
    p99: float  # s
    errors: int
    cpu: float  # s of CPU wrk itself used

    @property
    def rows_per_second(self) -> float:
        return self.requests * self.rows_per_request / self.seconds

    def text(self) -> str:
        return (f"{self.rows_per_second:,.0f} rows/s, p50 {self.p50 * 1000:.1f} ms, p99 "
                f"{self.p99 * 1000:.1f} ms, {self.errors} errors")


def _wrk(url: str, body: Path, rows: int, connections: int, seconds: int, token: str = "") -> Run:
    parts = urlsplit(url)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "30s",
         "-s", str(SCRIPT), f"{parts.scheme}://{parts.netloc}", "--", parts.path, str(body),
         token],
        capture_output=True, text=True, check=True, timeout=seconds + 120,
    ).stdout
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(ln for ln in out.splitlines() if ln.startswith("SERVE-JSON "))
    f = json.loads(line.removeprefix("SERVE-JSON "))
    return Run(rows, f["requests"], f["duration_us"] / 1e6, f["p50_us"] / 1e6, f["p99_us"] / 1e6,
               f["status_errors"] + f["socket_errors"],
               now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime)


def _measure(url: str, body: Path, rows: int, token: str = "") -> Run:
    _wrk(url, body, rows, CONNECTIONS, WARM_SECONDS, token)
    return _wrk(url, body, rows, CONNECTIONS, SECONDS, token)


@contextlib.contextmanager
def litserve_server(module_path: Path, max_batch_size: int, log: Path) -> Iterator[str]:
    """A LitServe server of the saved module in processes of its own; yields its predict URL."""
    port = free_port()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.litserve_app", str(module_path), str(port),
             str(max_batch_size), str(WAIT_MS), str(THREADS)],
            cwd=ROOT.parent, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"LitServe exited ({proc.returncode}); see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"LitServe did not become healthy; see {log}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/predict"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and its workers
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def _inside(client: httpx.Client, body: Path, n: int = 200) -> float:
    """p50 of the server's own `inference_time` (from the compute plane taking the request to its
    answer: gateway, channel, worker) over `n` lone requests (s)."""
    times = []
    for _ in range(n):
        r = client.post("inference", content=body.read_bytes(),
                        headers={"Content-Type": "application/json"})
        times.append(r.json()["data"]["inference_time"])
    return statistics.median(times)


def _ratio(name: str, ours: float, theirs: float, unit: str, goal: str, note: str) -> Result:
    return Result(name=name, value=ours, unit=unit,
                  baseline="LitServe, same weights, batching limit, wait, threads and wrk load, "
                           "same run",
                  baseline_value=theirs, ratio=ours / theirs if theirs else float("inf"),
                  goal=goal, note=note)


def run() -> list[Result]:
    if shutil.which("wrk") is None:
        print("bench_litserve skipped: wrk is not installed (make bench installs it as root: "
              "apt-get install -y wrk)", flush=True)
        return []
    try:
        import litserve
    except ImportError:
        print("bench_litserve skipped: litserve is not installed (make bench installs the bench "
              "extra)", flush=True)
        return []
    import torch
    from gswarm_kernels.torch_infer import predict

    load_before = os.getloadavg()[0]  # other work on the machine moves every figure
    module, width = _direct(MODEL)

    def direct_forward() -> float:
        """p50 of the one-row forward in this process on the workers' torch threads (s)."""
        x1 = np.asarray(inputs[1], dtype=np.float32)
        default = torch.get_num_threads()
        torch.set_num_threads(THREADS)
        try:
            return statistics.median(_timed(lambda: predict(module, x1), 200))
        finally:
            torch.set_num_threads(default)

    rng = np.random.default_rng(1)
    ours: dict[tuple[int, int], Run] = {}  # (rows per request, batch limit in rows) -> run
    theirs: dict[tuple[int, int], Run] = {}
    with tempfile.TemporaryDirectory(prefix="gswarm-bench-") as tmp:
        folder = Path(tmp)
        module_path = folder / "mlp.pt"
        torch.save(module, module_path)
        bodies: dict[tuple[int, int], Path] = {}
        inputs: dict[int, list[list[float]]] = {}
        for rows in (1, 8):
            data = rng.standard_normal((rows, width), dtype=np.float32).round(5).tolist()
            inputs[rows] = data
            for limit in BEST_ROWS:
                path = folder / f"body-{rows}-{limit}.json"
                path.write_text(json.dumps({"model_id": f"ls-b{limit}", "input_data": data}))
                bodies[rows, limit] = path
        lone_body = folder / "body-lone.json"  # a service of its own: its counters are lone ones
        lone_body.write_text(json.dumps({"model_id": "ls-lone", "input_data": inputs[1]}))
        server = LiveServer(folder / "gswarm", nodes=1)  # the server's defaults
        with server:
            client = httpx.Client(base_url=server.url.rstrip("/") + COMPUTE,
                                  headers=server.headers, timeout=300)
            for name, limit in [*((f"ls-b{limit}", limit) for limit in BEST_ROWS),
                                ("ls-lone", MAX_ROWS)]:
                r = client.post("models", json={"model_id": name, "model_path": MODEL,
                                                "max_batch_size": limit,
                                                "batch_timeout_ms": WAIT_MS})
                assert r.status_code == 201, r.text
            lone_service = r.json()["data"]["service_id"]
            url = server.url.rstrip("/") + COMPUTE + "inference"
            for body in [*bodies.values(), lone_body]:  # first-use costs out of the figures
                for _ in range(5):
                    r = client.post("inference", content=body.read_bytes(),
                                    headers={"Content-Type": "application/json"})
                    assert r.status_code == 200, r.text
            log = folder / "litserve.log"
            # Interleaved: gswarm, then LitServe at the same limits, load by load.
            ours[1, MAX_ROWS] = _measure(url, bodies[1, MAX_ROWS], 1, server.token)
            ours_lone = _wrk(url, lone_body, 1, 1, LONE_SECONDS, server.token)
            direct = [direct_forward()]  # right beside each lone run: the machine as it is then
            inside = _inside(client, lone_body)
            status = httpx.get(server.url + f"gswarm/api/v1/services/{lone_service}/status",
                               headers=server.headers).json()["data"]
            batcher = status["latency_p50"]
            client.close()
            with litserve_server(module_path, MAX_ROWS, log) as peer:
                theirs[1, MAX_ROWS] = _measure(peer, bodies[1, MAX_ROWS], 1)
                theirs_lone = _wrk(peer, bodies[1, MAX_ROWS], 1, 1, LONE_SECONDS)
                direct.append(direct_forward())
            for limit in BEST_ROWS:
                ours[8, limit] = _measure(url, bodies[8, limit], 8, server.token)
                with litserve_server(module_path, limit // 8, log) as peer:
                    theirs[8, limit] = _measure(peer, bodies[8, limit], 8)
    direct_one = statistics.mean(direct)
    parts = lone_parts(MODEL, inputs[1][0], THREADS)  # after the servers stopped

    setup = (f"{MODEL}; wrk ({CONNECTIONS} keep-alive connections, 1 wrk thread, "
             f"benchmarks/serve.lua) for {SECONDS} s after {WARM_SECONDS} s of warm-up per "
             f"system; batch limit {MAX_ROWS} rows (LitServe max_batch_size {MAX_ROWS} // rows "
             f"per request), {WAIT_MS:g} ms wait, torch on {THREADS} threads in both; LitServe "
             f"{litserve.__version__}, 1 worker, 1 API server, 127.0.0.1; the machine's load "
             f"average {load_before:.1f} before the run, {os.getloadavg()[0]:.1f} after it, "
             f"on {os.cpu_count()} cores")
    wrk_cpu = sum(r.cpu for r in [*ours.values(), *theirs.values()])
    wrk_seconds = sum(r.seconds for r in [*ours.values(), *theirs.values()])
    results = []
    for rows in (1, 8):
        a, b = ours[rows, MAX_ROWS], theirs[rows, MAX_ROWS]
        note = (f"{setup}. {rows} row(s) per request: gswarm {a.text()}; LitServe {b.text()}. "
                f"wrk used {wrk_cpu:.1f} s of CPU over {wrk_seconds:.0f} s of loads")
        tag = f"serving_vs_litserve_{rows}row{'s' if rows > 1 else ''}"
        results += [
            _ratio(f"{tag}_rows_per_second", a.rows_per_second, b.rows_per_second, "rows/s",
                   ">= 1.0", note),
            _ratio(f"{tag}_p50_ms", a.p50 * 1000, b.p50 * 1000, "ms", "<= 1.0", "as above"),
            _ratio(f"{tag}_p99_ms", a.p99 * 1000, b.p99 * 1000, "ms", "<= 1.0", "as above"),
        ]
    best_ours = max((ours[8, limit] for limit in BEST_ROWS), key=lambda r: r.rows_per_second)
    best_theirs = max((theirs[8, limit] for limit in BEST_ROWS), key=lambda r: r.rows_per_second)
    tried = "; ".join(
        f"limit {limit} rows: gswarm {ours[8, limit].text()}, LitServe (max_batch_size "
        f"{limit // 8}) {theirs[8, limit].text()}" for limit in BEST_ROWS)
    results.append(_ratio(
        "serving_vs_litserve_8rows_best_rows_per_second", best_ours.rows_per_second,
        best_theirs.rows_per_second, "rows/s", ">= 1.0",
        f"each system at its own best batch limit for 8 rows per request, {CONNECTIONS} "
        f"connections. Tried: {tried}"))
    errors_ours = sum(r.errors for r in [*ours.values(), ours_lone])
    errors_theirs = sum(r.errors for r in [*theirs.values(), theirs_lone])
    results.append(Result(
        name="serving_vs_litserve_errors", value=errors_ours, unit="errors",
        baseline="LitServe under the same loads, same run", baseline_value=errors_theirs,
        ratio=errors_ours, goal="<= 0",
        note="answers not 2xx and socket errors (wrk's counts) over every load of this benchmark"))
    results.append(Result(
        name="serving_vs_litserve_lone_overhead_ms",
        value=(ours_lone.p50 - direct_one) * 1000, unit="ms",
        baseline=f"LitServe's lone request p50 minus the same direct forward ({THREADS} threads)",
        baseline_value=(theirs_lone.p50 - direct_one) * 1000,
        ratio=(ours_lone.p50 - direct_one) * 1000, goal="<= 1",
        note=(f"one wrk connection for {LONE_SECONDS} s, one row per request: gswarm p50 "
              f"{ours_lone.p50 * 1000:.2f} ms, LitServe p50 {theirs_lone.p50 * 1000:.2f} ms; "
              f"direct one-row forward p50 {direct_one * 1000:.2f} ms in the benchmark's process "
              f"on {THREADS} threads (mean of its p50 right after each lone run: "
              f"{', '.join(f'{d * 1000:.2f}' for d in direct)} ms). LitServe waits up to "
              f"{WAIT_MS:g} ms for a batch to fill; gswarm's batcher hands a lone row to its "
              f"compute thread at once (it gathers company only while a batch computes). Where "
              f"gswarm's lone request goes (p50s): HTTP, authentication, audit record, "
              f"validation and JSON {(ours_lone.p50 - inside) * 1000:.2f} ms (wrk's p50 minus "
              f"the server's inference_time; of which JSON decode and encode {parts['json']:.2f} "
              f"ms and body validation {parts['validate']:.2f} ms, measured in this process); "
              f"gateway to the replica's worker and back over its Dask comm "
              f"{(inside - batcher) * 1000:.2f} ms (inference_time minus the batcher's own "
              f"latency); in the batcher {batcher * 1000:.2f} ms: its own queue and hand-over "
              f"to its compute thread and back {parts['batcher_own']:.2f} ms (measured in this "
              f"process around the same weights), the rest the forward in the worker. The "
              f"direct forward is {parts['forward_hot']:.2f} ms with its weights hot in the "
              f"caches (back to back, as the baseline runs), {parts['forward_cold']:.2f} ms "
              f"after reading twice the last-level cache and {parts['forward_spaced']:.2f} ms "
              f"after 5 ms idle: a lone request's forward follows the HTTP stack and the comm, "
              f"which run over the same caches and let torch's threads fall asleep"
              + ("" if ours_lone.p50 >= direct_one else
                 ". Below zero: the direct forward ran slower than the served one, i.e. other "
                 "work on the machine moved between the measurements; the figure means nothing "
                 "in such a run"))))
    return results
