"""Reading a checkpoint ahead into the page cache: a cached file is left alone, an evicted one is
asked for whole and reads back the same."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from gswarm_kernels import init_params, parse_builtin_url, save_checkpoint

from gswarm_jupyter.backends import checkpoints, pagecache

MLP = parse_builtin_url("builtin://mlp?in=64&hidden=512,512&out=64&seed=4")  # ~1.3 MiB


def evict(path) -> bool:
    """Drop the file's pages; False where the file system keeps them (tmpfs)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return not pagecache.cached(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def resident_soon(path, seconds: float = 20.0) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        deadline = time.monotonic() + seconds
        while not pagecache.cached(fd, os.fstat(fd).st_size):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True
    finally:
        os.close(fd)


@pytest.fixture
def checkpoint_file(tmp_path):
    path = tmp_path / "m.safetensors"
    params = init_params(MLP.arch, MLP.config, MLP.seed)
    save_checkpoint(path, MLP.arch, MLP.config, params)
    return path, params


def test_a_cached_file_is_not_asked_for_again(checkpoint_file):
    path, _ = checkpoint_file
    path.read_bytes()
    assert pagecache.prefetch(path) is False


def test_an_evicted_checkpoint_is_read_ahead_window_by_window_and_reads_the_same(
    checkpoint_file, monkeypatch
):
    path, params = checkpoint_file
    if not evict(path):
        pytest.skip("this file system keeps the file in memory")
    asked: list[tuple[int, int]] = []
    fadvise = os.posix_fadvise
    monkeypatch.setattr(pagecache, "readahead_window", lambda device: 128 * 1024)
    monkeypatch.setattr(os, "posix_fadvise",
                        lambda fd, offset, length, advice: (asked.append((offset, length)),
                                                            fadvise(fd, offset, length, advice)))
    assert pagecache.prefetch(path) is True
    size = path.stat().st_size
    assert asked[0][0] == 0 and sum(n for _, n in asked) == size  # the whole file, in windows
    assert all(n <= 128 * 1024 for _, n in asked) and len(asked) == -(-size // (128 * 1024))
    assert resident_soon(path)
    arch, _, loaded = checkpoints.read_file(path)
    assert arch == "mlp" and all(np.array_equal(loaded[k], params[k]) for k in params)


def test_the_window_of_an_unknown_device_is_the_kernel_default():
    assert pagecache.readahead_window(os.makedev(0, 4095)) == pagecache.DEFAULT_WINDOW
    assert pagecache.prefetch("/nonexistent/m.safetensors") is False
