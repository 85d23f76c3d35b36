"""glibc's mmap threshold in a node's worker process: large blocks (a model's activations and
gradients, 128 KiB to a few MiB each) come from the heap and are reused, not mapped afresh and
page-faulted in on every step.

Why: Dask's nanny starts workers with `MALLOC_TRIM_THRESHOLD_` set (so freed memory goes back to
the system). Setting any of glibc's malloc thresholds turns off its dynamic mmap threshold, which
otherwise rises to the size of the largest block freed (up to 32 MiB on 64-bit). Without it every
block of 128 KiB or more is an mmap and a munmap, and each of its pages a minor fault; measured in a
Dask worker on a torch MLP loop (2 epochs, batch 128, hidden 1024): about 270,000 minor faults
against about 100,000-160,000 with the threshold fixed at 32 MiB, and sys time roughly halved.

Freed memory still goes back to the system past the trim threshold (64 MiB of free space at the
top of the heap instead of Dask's 64 KiB), and blocks of 32 MiB or more are still mapped.

Invariant: the thresholds are set once per process, only on glibc, and never where the operator
set `MALLOC_MMAP_THRESHOLD_` themselves.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 * 2**20  # glibc's own ceiling for its dynamic threshold on 64-bit


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Set glibc's mmap threshold to `threshold` bytes in this process, and its trim threshold to
    twice that (glibc's own rule when it moves the threshold), so that a freed block at the top
    of the heap is not handed back only to be faulted in again by the next step; whether it was
    set (False off glibc, or when `MALLOC_MMAP_THRESHOLD_` is already in the environment)."""
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
    if not done:
        log.warning("gswarm: glibc refused an mmap threshold of %d bytes", threshold)
    return done
