"""glibc's malloc in a worker-like process (MALLOC_TRIM_THRESHOLD_ set, as Dask's nanny does):
blocks of 1 MiB freed and allocated again fault their pages in anew until the mmap threshold is
fixed, and a thread's step that needs a heap more than its arena's first one has free maps and
unmaps that heap every time until the top pad keeps it; tuned, both are reused."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

PROBE = """
import resource, sys
import numpy as np
from gswarm_jupyter.cluster.runtime.allocator import tune_heap

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(200):
        np.ones(2**18, dtype=np.float32)  # 1 MiB, freed at once
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults()
frozen = faults()
done = tune_heap()
print(done, frozen, faults())
"""

THREAD_PROBE = """
import resource, sys, threading
import numpy as np
from gswarm_jupyter.cluster.runtime.allocator import tune_heap

tune_heap(top_pad=int(sys.argv[1]))
out = []

def steps():  # on a thread of its own, so in an arena of 64 MiB heaps, not the main heap
    kept = [np.ones(2**20, dtype=np.uint8) for _ in range(50)]  # 50 MiB the step outlives
    np.ones(2**24, dtype=np.uint8)  # 16 MiB: more than the first heap has free
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for _ in range(40):
        np.ones(2**24, dtype=np.uint8)
    out.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
    del kept

thread = threading.Thread(target=steps)
thread.start()
thread.join()
print(out[0])
"""

GLIBC = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


def _run(env: dict[str, str], probe: str = PROBE, *args: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", probe, *args], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=120, check=True)
    return out.stdout.split()


@GLIBC
def test_fixed_threshold_reuses_large_blocks() -> None:
    done, frozen, fixed = _run({"MALLOC_TRIM_THRESHOLD_": "65536"})
    assert done == "True"
    assert int(frozen) > 200 * 200  # every 1 MiB block mapped afresh: 256 pages each
    assert int(fixed) < int(frozen) / 10, (frozen, fixed)


@GLIBC
def test_top_pad_keeps_a_threads_second_heap() -> None:
    dask_env = {"MALLOC_TRIM_THRESHOLD_": "65536"}
    (churned,) = _run(dask_env, THREAD_PROBE, str(128 * 1024))  # glibc's default pad
    (kept,) = _run(dask_env, THREAD_PROBE, str(64 * 2**20))  # the node's
    assert int(churned) > 40 * 100  # the 16 MiB heap mapped anew at every step (20,800 seen)
    assert int(kept) < int(churned) / 10, (churned, kept)


def test_operator_setting_is_left_alone() -> None:
    done, _, _ = _run({"MALLOC_MMAP_THRESHOLD_": "131072"})
    assert done == "False"
