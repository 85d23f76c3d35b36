"""A worker runs every training loop on its process's one compute thread, whichever of its
executor threads took the task: torch then keeps one OpenMP team per worker (libgomp builds one
per thread that runs torch, and with more teams than CPUs its threads sleep at every barrier
instead of spinning). The calls are watched where they happen, the real ones still made."""

from __future__ import annotations

import asyncio
import threading

from gswarm_jupyter.backends import training
from gswarm_jupyter.cluster.runtime import compute
from gswarm_jupyter.cluster.training import ops

from .model_helpers import register
from .test_training_routes import MLP, C, body, wait_finished


async def test_loops_run_on_one_compute_thread_whichever_executor_thread_took_them(
        api, monkeypatch):
    callers: set[int] = set()  # the executor threads that took the tasks
    loops: set[tuple[int, str]] = set()  # the threads that ran the loops
    real_weights, real_train = ops._weights, training.train

    def weights(*args, **kwargs):  # the op's first step, on the thread that took the task
        callers.add(threading.get_ident())
        return real_weights(*args, **kwargs)

    def train(*args, **kwargs):
        loops.add((threading.get_ident(), threading.current_thread().name))
        return real_train(*args, **kwargs)

    monkeypatch.setattr(ops, "_weights", weights)
    monkeypatch.setattr(training, "train", train)
    await register(api, "one-team", MLP, download_to="node1:dram")
    # Four on node1: the queue runs them one after another (same device and model), each on
    # whichever of the worker's executor threads Dask picks.
    accepted = await asyncio.gather(*(api("POST", f"{C}/training/async", body={
        **body("one-team", epochs=3), "device": "node1:dram", "update_model": False,
        "seed": i}) for i in range(4)))
    done = [await wait_finished(api, env["data"]["request_id"]) for _, env, _ in accepted]
    assert [d["status"] for d in done] == ["completed"] * 4, [d.get("error") for d in done]
    assert len(loops) == 1, loops
    ((ident, name),) = loops
    assert name.startswith(compute.THREAD_NAME) and ident not in callers
