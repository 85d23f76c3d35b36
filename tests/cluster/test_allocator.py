"""glibc's mmap threshold in a worker-like process (MALLOC_TRIM_THRESHOLD_ set, as Dask's nanny
does): blocks of 1 MiB freed and allocated again fault their pages in anew until the threshold is
fixed, then are reused from the heap."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

PROBE = """
import resource, sys
import numpy as np
from gswarm_jupyter.cluster.runtime.allocator import fix_mmap_threshold

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(200):
        np.ones(2**18, dtype=np.float32)  # 1 MiB, freed at once
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults()
frozen = faults()
done = fix_mmap_threshold()
print(done, frozen, faults())
"""


def _run(env: dict[str, str]) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=120, check=True)
    return out.stdout.split()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_fixed_threshold_reuses_large_blocks() -> None:
    done, frozen, fixed = _run({"MALLOC_TRIM_THRESHOLD_": "65536"})
    assert done == "True"
    assert int(frozen) > 200 * 200  # every 1 MiB block mapped afresh: 256 pages each
    assert int(fixed) < int(frozen) / 10, (frozen, fixed)


def test_operator_setting_is_left_alone() -> None:
    done, _, _ = _run({"MALLOC_MMAP_THRESHOLD_": "131072"})
    assert done == "False"
