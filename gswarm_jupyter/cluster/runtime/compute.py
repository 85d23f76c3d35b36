"""One compute thread per worker process for the loops of worker ops (training, quantisation).

Invariant: every call made through `run` runs on the same thread of this process, one at a time,
in the order they came, whichever thread (a Dask executor thread) asked for it; the caller waits
for its result, and a call still waiting for the thread when its task is cancelled never runs.

Why one thread: torch's CPU wheel bundles libgomp, which keeps one OpenMP team per thread that
opens a parallel region, and while it manages more threads than the process has CPUs it stops
spinning at its barriers and sleeps on a futex at every one. A Dask worker runs tasks on several
executor threads, so loops that landed on two of them left two teams behind and every later loop
slept and woke at each barrier (measured: a 4-epoch mlp loop ~7,900 voluntary context switches
against ~20 with one team, and about twice the wall time near idle). The serving batcher keeps
its own compute thread per service: a service's forward passes must not wait behind a training
loop, and the vGPU fair queue orders the threads that wait for a device's turn.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from .signals import TaskSignal

T = TypeVar("T")

THREAD_NAME = "gswarm-compute"
_POLL = 0.1  # seconds between cancel checks while a call waits for the thread

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(1, thread_name_prefix=THREAD_NAME)
        return _pool


def run(signal: TaskSignal, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` on this process's compute thread, in the caller's context (Dask's
    `get_worker` reads a context variable); raises what it raises. Cancelled before it started
    (its task flagged while an earlier call held the thread), it never runs: `TaskCancelled`."""
    context = contextvars.copy_context()
    future: Future[T] = _executor().submit(context.run, fn, *args, **kwargs)
    while not future.running() and not future.done():  # queued behind another call
        if signal.cancelled and future.cancel():
            signal.check()
        wait([future], timeout=_POLL, return_when=FIRST_COMPLETED)
    return future.result()  # once it runs, `fn` checks the signal itself
