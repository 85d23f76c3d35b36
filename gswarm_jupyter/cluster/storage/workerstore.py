"""What the worker-side stores (chunks, model weights) share: one instance per worker, kept on
the `Worker` object so re-registering plugins or restarting the server (with an external
cluster) drops no memory copy, and a folder of its own in the node's store; and the block copy
every write goes through (progress, cancellation, bandwidth pacing)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
from distributed import Worker

from ..runtime.signals import TaskSignal

S = TypeVar("S", bound="WorkerStore")

_create_lock = threading.Lock()
BLOCK = 8 * 1024 * 1024


class WorkerStore:
    ATTRIBUTE: ClassVar[str]  # the Worker attribute the instance lives on
    SUBFOLDER: ClassVar[str]  # its folder inside the node's store
    STALE: ClassVar[str] = "*.part"  # unfinished writes a previous worker process left behind

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.memory: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        for stale in self.folder.glob(self.STALE):
            stale.unlink(missing_ok=True)

    @classmethod
    def of(cls: type[S], worker: Worker) -> S:
        with _create_lock:
            store = getattr(worker, cls.ATTRIBUTE, None)
            if store is None:
                store = cls(node_store(worker) / cls.SUBFOLDER)
                setattr(worker, cls.ATTRIBUTE, store)
            return store


def node_store(worker: Worker) -> Path:
    """The node agent's store folder (or, before the agent set up, where it would put it)."""
    from ..runtime.agent import PLUGIN_NAME, NodeAgent, default_store

    agent = worker.plugins.get(PLUGIN_NAME)
    if isinstance(agent, NodeAgent) and agent.store is not None:
        return agent.store
    return default_store(worker, None)


def as_byte_array(data: Any) -> np.ndarray:
    """Bytes, numpy arrays or torch tensors as a flat uint8 array (a view where possible)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    if type(data).__module__.startswith("torch"):
        return np.ascontiguousarray(data.detach().cpu().numpy()).reshape(-1).view(np.uint8)
    raise TypeError(f"cannot store a {type(data).__name__} as chunk bytes")


def copy_blocks(
    src: np.ndarray,
    sink: Any,
    total: int,
    signal: TaskSignal,
    bandwidth_limit: int | None,
    progress_range: tuple[float, float],
) -> None:
    """Feed `src` to `sink(offset, block)` block by block, reporting progress, honouring
    cancellation and pacing to `bandwidth_limit` bytes/s (also used for model weights)."""
    block = BLOCK if not bandwidth_limit else max(4096, min(BLOCK, bandwidth_limit // 10))
    low, high = progress_range
    started = time.monotonic()
    signal.check()
    for offset in range(0, total, block):
        sink(offset, src[offset : offset + block])
        done = min(total, offset + block)
        signal.progress(low + (high - low) * done / total)
        if bandwidth_limit:
            _pace(started, done, bandwidth_limit, signal)
        signal.check()


def _pace(started: float, done: int, bandwidth_limit: int, signal: TaskSignal) -> None:
    """Sleep until `done` bytes are due at `bandwidth_limit`, in naps that watch for cancel."""
    due = started + done / bandwidth_limit
    while (left := due - time.monotonic()) > 0:
        signal.check()
        time.sleep(min(left, 0.05))
