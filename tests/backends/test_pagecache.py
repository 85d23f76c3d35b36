"""Faulting a mapped checkpoint in ahead of the model: a cached file is left alone, an evicted
one comes in whole, reads back the same and stays a private copy."""

from __future__ import annotations

import os

import numpy as np
import pytest
from gswarm_kernels import init_params, parse_builtin_url, save_checkpoint
from gswarm_kernels.checkpoint import mapped, read_checkpoint

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


def resident(path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        return pagecache.cached(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


@pytest.fixture
def checkpoint_file(tmp_path):
    path = tmp_path / "m.safetensors"
    params = init_params(MLP.arch, MLP.config, MLP.seed)
    save_checkpoint(path, MLP.arch, MLP.config, params)
    return path, params


def test_a_cached_file_is_left_alone(checkpoint_file):
    path, _ = checkpoint_file
    path.read_bytes()
    _, _, params = checkpoints.read_file(path)
    assert pagecache.prefetch(path, params.values()) is None


def test_an_evicted_checkpoint_is_faulted_in_behind_the_reader_and_stays_private(checkpoint_file):
    path, params = checkpoint_file
    before = path.read_bytes()
    if not evict(path):
        pytest.skip("this file system keeps the file in memory")
    loaded = dict(read_checkpoint(path, as_float32=False).params)
    assert not resident(path)
    thread = pagecache.prefetch(path, loaded.values())
    assert thread is not None
    thread.join(timeout=60)
    assert not thread.is_alive() and resident(path)  # every sampled page came in
    assert all(np.array_equal(loaded[k], params[k]) for k in params)
    loaded["layers.0.weight"][0, 0] += 1.0  # copy-on-write: the file never changes
    assert path.read_bytes() == before


def test_read_file_hands_its_mapped_params_to_the_prefetch(checkpoint_file, monkeypatch):
    path, params = checkpoint_file
    asked = []
    monkeypatch.setattr(checkpoints, "prefetch",
                        lambda where, arrays: asked.append((where, list(arrays))))
    arch, _, loaded = checkpoints.read_file(path)
    assert arch == "mlp" and all(np.array_equal(loaded[k], params[k]) for k in params)
    [(where, arrays)] = asked
    assert where == path and len(arrays) == len(loaded)
    assert all(any(a is v for a in arrays) and mapped(v) for v in loaded.values())


def test_a_missing_file_is_not_prefetched():
    assert pagecache.prefetch("/nonexistent/m.safetensors", []) is None
