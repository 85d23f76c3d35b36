"""The weight store's Dask ops: each runs on one worker over its `WeightStore` (weightstore.py),
and a failure comes back as the API's error (`worker_op`). A write answers what was stored and
the worker that holds it (`stored_here`), so the server records the copy where it really is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from distributed import get_worker

from ...backends import checkpoints
from ...core.errors import InvalidRequest
from ...core.fetchpolicy import FetchPolicy
from ...core.sources import package_path
from ..runtime.signals import TaskSignal, worker_op
from . import hfdir
from .httpfetch import Room
from .weightstore import WeightStore, unpack_limit
from .workerstore import stored_here


@worker_op
def acquire_weights(
    name: str,
    version: int,
    device: str,
    source: dict[str, Any],
    signal: TaskSignal,
    expect_checksum: str | None = None,
    room: Room | None = None,
    policy: FetchPolicy | None = None,
) -> dict[str, Any]:
    """Make the first copy of a model from its source (builtin, file, or http where `policy`
    allows: the default policy when none is given); answers what was stored and the worker that
    holds it."""
    def acquire(store: WeightStore) -> dict[str, Any]:
        kind = source["kind"]
        hf = {"model_type": source.get("model_type"), "num_labels": source.get("num_labels")}
        if kind == "builtin":
            data = checkpoints.builtin_checkpoint(source["url"])
            return store.write(name, version, device, data, signal,
                               expect_checksum=expect_checksum)
        if kind in ("file", "pkg"):
            path = Path(source["path"]) if kind == "file" else package_path(source["url"])
            if path.is_dir() or hfdir.archive_kind(path) is not None:
                return store.write_model_dir(name, version, device, path, signal, **hf,
                                             expect_checksum=expect_checksum,
                                             limit=unpack_limit(room), base=source.get("base"))
            return store.write_file(name, version, device, path, signal,
                                    expect_checksum=expect_checksum)
        if kind == "http":
            return store.download(name, version, device, source["url"], signal,
                                  policy=policy or FetchPolicy(), room=room,
                                  expect_checksum=expect_checksum, hf=hf)
        raise InvalidRequest(f"unknown source kind {kind!r}", {"field": "source_url"})

    return stored_here(WeightStore, signal, acquire)


@worker_op
def read_weights(name: str, device: str) -> np.ndarray:
    """One copy's file bytes (for a copy between nodes Dask carries them worker to worker)."""
    return WeightStore.of(get_worker()).read(name, device)


@worker_op
def write_weights(
    name: str,
    device: str,
    data: Any,
    signal: TaskSignal,
    version: int,
    bandwidth_limit: int | None = None,
    expect_checksum: str | None = None,
) -> dict[str, Any]:
    """Write one copy from another copy's bytes; answers what was stored and where."""
    return stored_here(WeightStore, signal, lambda store: store.write(
        name, version, device, data, signal, bandwidth_limit=bandwidth_limit,
        expect_checksum=expect_checksum, measure=False,
    ))


@worker_op
def drop_weights(name: str, device: str) -> bool:
    return WeightStore.of(get_worker()).delete(name, device)


@worker_op
def weights_checksum(name: str, device: str) -> str:
    """sha256 of one copy's bytes, computed where it is."""
    return WeightStore.of(get_worker()).checksum(name, device)


@worker_op
def held_weights() -> dict[str, list[str]]:
    """What this worker holds: model name -> devices."""
    return WeightStore.of(get_worker()).copies()


def load_weights(model_name: str, device: str) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    """On a worker: (arch, config, params) of this node's copy of `model_name` on `device`,
    params as numpy arrays (zero-copy where the copy allows)."""
    return WeightStore.of(get_worker()).load(model_name, device)


def load_tensors(model_name: str, device: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """On a worker: (arch, config, params) with params torch tensors on the copy's device."""
    return WeightStore.of(get_worker()).tensors(model_name, device)
