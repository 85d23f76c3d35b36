"""Dask's statistical profiler stays off in a node's worker: a node trains and serves models on
the threads its cores allow, and nothing on the worker's event loop takes the GIL from them 100
times a second.

Why: a Dask worker samples the stacks of its running tasks every 10 ms on its event loop
(`distributed.worker.profile`). A torch step holds the GIL through its forward pass and optimizer
step, so each sample waits for a switch, takes the GIL from the training thread and hands it back;
on a loaded machine the training thread then waits for a core too. Measured in a plain Dask
worker (the bench MLP, 2 epochs, batch 128, 2 threads, load ~17 on 2 cores, 4 interleaved
rounds): 6.35 s median with the profiler against 3.17 s with it stopped, the same loss. gswarm's
own profiler (profiler/) samples devices, not Python stacks, and is untouched; Dask's dashboard
shows an empty profile for these workers.

Invariant: only the profiler's two periodic callbacks are stopped and dropped, once per worker
(heartbeats, keep-alive and the rest run as Dask sets them).
"""

from __future__ import annotations

from distributed import Worker

CALLBACKS = ("profile", "profile-cycle")


def stop_stack_sampling(worker: Worker) -> bool:
    """Stop and drop `worker`'s statistical profiler callbacks; whether any ran. Call on the
    worker's event loop (a plugin's `setup`)."""
    stopped = False
    for name in CALLBACKS:
        callback = worker.periodic_callbacks.pop(name, None)
        if callback is not None:
            callback.stop()
            stopped = True
    return stopped
