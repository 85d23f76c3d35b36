"""One compute thread per worker process for the loops of worker ops (training, quantisation).

Invariant: a call made through `run` while the compute thread is free runs on it, whichever
thread (a Dask executor thread) asked; a call made while it is busy runs at once on the caller's
own thread, as it did before there was a compute thread: no call ever waits for another (a long
training on one model never holds back a quick one on another, and a loop left running by a
stopped server never blocks the next). The caller waits for its result in both cases.

Why one thread: torch's CPU wheel bundles libgomp, which keeps one OpenMP team per thread that
opens a parallel region, and while it manages more threads than the process has CPUs it stops
spinning at its barriers and sleeps on a futex at every one. A Dask worker runs tasks on several
executor threads, so loops that landed on two of them left two teams behind and every later loop
slept and woke at each barrier (measured: a 4-epoch mlp loop ~7,900 voluntary context switches
against ~20 with one team, and about twice the wall time near idle). Loops one after another now
share one team; only loops that really overlap build a second. The serving batcher keeps its own
compute thread per service: a service's forward passes must not wait behind a training loop, and
the vGPU fair queue orders the threads that wait for a device's turn.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .signals import TaskSignal

T = TypeVar("T")

THREAD_NAME = "gswarm-compute"

_lock = threading.Lock()
_busy = threading.Lock()  # held while a call runs on the compute thread
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(1, thread_name_prefix=THREAD_NAME)
        return _pool


def run(signal: TaskSignal, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` on this process's compute thread when it is free, else on this
    thread, in the caller's context (Dask's `get_worker` reads a context variable); raises what
    it raises. A task cancelled before it starts never runs (`TaskCancelled`)."""
    signal.check()
    if not _busy.acquire(blocking=False):
        return fn(*args, **kwargs)
    try:
        context = contextvars.copy_context()
        return _executor().submit(context.run, fn, *args, **kwargs).result()
    finally:
        _busy.release()
