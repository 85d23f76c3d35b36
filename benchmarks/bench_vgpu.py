"""Compute shares of virtual GPUs: two CPU-backed vGPUs of one node with 1 and 3 compute units
(`scheduling_policy: weighted`), a service of the same model on each, both saturated by client
threads for 30 s; the share of the node's batches each service ran, from the services' own batch
counters (`/services/{id}/status`), against the 25% / 75% the units ask.

The figure is the distance (0..1) of the 3-unit service's share from 0.75; goal: within 10 points.
"""

from __future__ import annotations

import http.client
import json
import tempfile
import threading
import time
from pathlib import Path

import httpx

from gswarm_jupyter.client import GswarmClient
from gswarm_jupyter.testing import LiveServer

from .harness import Result

# A forward pass of ~10 ms on one thread, so the device, not HTTP, is what the services share.
MODEL = "builtin://mlp?in=256&hidden=4096,4096&out=16&seed=0"
UNITS = {"bench-vgpu-1": 1, "bench-vgpu-3": 3}
CLIENTS = 6  # per service: enough that a batch always waits
WARMUP = 3.0
WINDOW = 30.0
COMPUTE = "/gswarm/compute/v1/"


def _batches(server: LiveServer, service_id: str) -> int:
    status = httpx.get(server.url + f"gswarm/api/v1/services/{service_id}/status",
                       headers=server.headers, timeout=30).json()["data"]
    return sum(status["batch_size_histogram"].values())


def _saturate(server: LiveServer, model_id: str, stop: threading.Event,
              failures: list[str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    body = json.dumps({"model_id": model_id, "input_data": [[0.1] * 256]})
    while not stop.is_set():
        conn.request("POST", COMPUTE + "inference", body, headers)
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            failures.append(data.decode()[:200])
            return
    conn.close()


def run() -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="gswarm-bench-") as tmp, \
            LiveServer(Path(tmp), nodes=1) as server, \
            GswarmClient(server.url, server.token) as client:
        services = {}
        for name, units in UNITS.items():
            made = client.compute.vgpu_create(name, 512 * 2**20, units, "weighted", "node1")
            model = f"bench-share-{units}"
            client.models.register(model, MODEL, download_to="node1:disk")
            service = client.services.start(model, device=f"node1:{made['device']}",
                                            config={"max_batch_size": 4})
            services[name] = (model, service["service_id"])
        stop, failures = threading.Event(), []
        threads = [threading.Thread(target=_saturate, args=(server, model, stop, failures))
                   for model, _ in services.values() for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(WARMUP)
        before = {name: _batches(server, sid) for name, (_, sid) in services.items()}
        time.sleep(WINDOW)
        after = {name: _batches(server, sid) for name, (_, sid) in services.items()}
        stop.set()
        for t in threads:
            t.join()
        if failures:
            raise RuntimeError(f"inference failed under load: {failures[0]}")
    ran = {name: after[name] - before[name] for name in UNITS}
    total = sum(ran.values())
    share3 = ran["bench-vgpu-3"] / total if total else float("nan")
    return [
        Result(
            name="vgpu_compute_share_error",
            value=share3 * 100, unit="% of batches",
            baseline="the share its compute units ask: 3 of 1+3", baseline_value=75.0,
            ratio=abs(share3 - 0.75), goal="<= 0.10",
            note=(f"two CPU-backed vGPUs of one node (1 and 3 compute units, weighted), a "
                  f"service of {MODEL} (max_batch_size 4) on each, {CLIENTS} client threads per "
                  f"service posting one-row inference without pause; over {WINDOW:.0f} s after "
                  f"{WARMUP:.0f} s of warm-up the services ran {ran['bench-vgpu-1']} and "
                  f"{ran['bench-vgpu-3']} batches ({100 - share3 * 100:.1f}% / "
                  f"{share3 * 100:.1f}%). The ratio is the distance of the 3-unit share from "
                  f"75%, as a fraction (0.10 = 10 points)"),
        ),
    ]
