"""glibc's malloc in a node's worker process: large blocks (a model's activations, gradients and
optimizer state, 128 KiB to a few MiB each) come from the heap and are reused, not mapped afresh
and page-faulted in on every step, in whichever thread's arena they live.

Why, the mmap threshold: Dask's nanny starts workers with `MALLOC_TRIM_THRESHOLD_` set (so freed
memory goes back to the system). Setting any of glibc's malloc thresholds turns off its dynamic
mmap threshold, which otherwise rises to the size of the largest block freed (up to 32 MiB on
64-bit). Without it every block of 128 KiB or more is an mmap and a munmap, and each of its pages
a minor fault; measured in a Dask worker on a torch MLP loop (2 epochs, batch 128, hidden 1024):
about 270,000 minor faults against about 100,000-160,000 with the threshold fixed at 32 MiB, and
sys time roughly halved.

Why, the top pad: a thread other than the main one allocates from an arena of 64 MiB heaps, and
glibc deletes a heap as soon as it is free unless the heaps before it would then hold less than
`M_TOP_PAD` (128 KiB by default) of free room. A training step that needs a few MiB more than
the arena's first heap has free made a heap and deleted it again at every step: strace of a
worker's torch loop with glibc's default arenas showed a 64 MiB heap mapped and unmapped ~100
times a round, 177,000-336,000 minor faults a round against ~1,100 with a top pad of 64 MiB (one
heap's size: a heap is then deleted only when its arena has a whole heap free besides). The main
arena's heap keeps up to the same pad when it trims. With it the worker keeps glibc's arena per
thread: with one arena (`MALLOC_ARENA_MAX=1`, tried as the cure first) XLA's CPU threads waited
at its lock on every tile's scratch buffer (perf: 4,591 futex calls in malloc's lock a JAX loop
against 232, the loop 13% slower).

Freed memory still goes back to the system past the trim threshold (64 MiB of free space at the
top of the main heap instead of Dask's 64 KiB), and blocks of 32 MiB or more are still mapped.

Invariant: the settings are made once per process, only on glibc, and never where the operator
set `MALLOC_MMAP_THRESHOLD_` (then nothing is set) or `MALLOC_TOP_PAD_` (then the pad is theirs).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt parameters
MMAP_THRESHOLD = 32 * 2**20  # glibc's own ceiling for its dynamic threshold on 64-bit
TOP_PAD = 64 * 2**20  # one heap of a thread's arena (HEAP_MAX_SIZE on 64-bit)


def tune_heap(threshold: int = MMAP_THRESHOLD, top_pad: int = TOP_PAD) -> bool:
    """Set glibc's mmap threshold to `threshold` bytes in this process, its trim threshold to
    twice that (glibc's own rule when it moves the threshold), so that a freed block at the top
    of the heap is not handed back only to be faulted in again by the next step, and its top pad
    to `top_pad`, so that a thread's arena keeps the heap its steps need; whether it was set
    (False off glibc, or when `MALLOC_MMAP_THRESHOLD_` is already in the environment)."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to set
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, threshold)) and bool(
        mallopt(M_TRIM_THRESHOLD, 2 * threshold))
    if done and "MALLOC_TOP_PAD_" not in os.environ:
        done = bool(mallopt(M_TOP_PAD, top_pad))
    if not done:
        log.warning("gswarm: glibc refused an mmap threshold of %d bytes or a top pad of %d",
                    threshold, top_pad)
    return done
