"""The long-lived heap of a process, kept out of the garbage collector's later passes.

A server or node process builds most of its objects at start-up (modules, classes, the Dask
client and worker, torch) and keeps them for its life. CPython's full collections (generation 2)
walk every tracked object each time: in the server under a serving load one took 300-500 ms
(measured), a pause every request in flight waits out. `settle()` collects once and freezes what
is left (`gc.freeze`): later passes walk only what was made since. `release()` hands the frozen
objects back to the collector: whoever drops a large part of a settled heap (a service's model,
the server's state at its stop) releases first, so cycles among what it dropped are collected.

`GSWARM_FREEZE_HEAP=0` in the environment turns `settle()` off: a process that hosts servers one
after another (a test session) would otherwise pay a full collection of its whole heap at each
start, and gain nothing from freezing.

Invariant: garbage present at `settle()` is collected by it; what it freezes is collected by no
pass until `release()` (objects freed by their reference counts are freed as ever).
"""

from __future__ import annotations

import gc
import os

ENV = "GSWARM_FREEZE_HEAP"


def enabled() -> bool:
    """Whether `settle()` freezes (unless `GSWARM_FREEZE_HEAP` is 0)."""
    return os.environ.get(ENV, "1").strip() != "0"


def settle() -> int:
    """Collect, then freeze what survives; answers how many objects are frozen now."""
    if not enabled():
        return gc.get_freeze_count()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def release() -> None:
    """Give every frozen object back to the collector (the oldest generation)."""
    gc.unfreeze()
