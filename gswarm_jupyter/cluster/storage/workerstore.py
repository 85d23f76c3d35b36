"""What the worker-side stores (chunks, model weights) share: one instance per worker, kept on
the `Worker` object so re-registering plugins or restarting the server (with an external
cluster) drops no memory copy, and a folder of its own in the node's store; the block copy
every write goes through (progress, cancellation, bandwidth pacing); disk writes staged in a
`.part` file, fsynced and renamed into place (a cancelled or failed write leaves nothing, a
reader finds one whole file); and the check that a dram write may keep the bytes it was given."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
from distributed import Worker, get_worker

from ..runtime.signals import TaskSignal

S = TypeVar("S", bound="WorkerStore")
Sink = Callable[[int, np.ndarray], Any]  # (offset, block): where a block copy puts each block

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

    # -- disk ---------------------------------------------------------------------------------

    def write_disk(
        self,
        part: Path,
        final: Path,
        src: np.ndarray,
        signal: TaskSignal,
        bandwidth_limit: int | None,
        progress_range: tuple[float, float],
        tap: Callable[[Sink], Sink] = lambda sink: sink,
        check: Callable[[], Any] = lambda: None,
    ) -> None:
        """Write `src` into `part` block by block (each block through `tap`), fsync it, run
        `check`, then make it `final`; `part` never stays behind."""
        try:
            with open(part, "wb") as f:
                copy_blocks(src, tap(lambda off, blk: f.write(blk)), int(src.nbytes), signal,
                            bandwidth_limit, progress_range)
                f.flush()
                os.fsync(f.fileno())
            check()
            self.install(part, final)
        finally:
            part.unlink(missing_ok=True)

    def install(self, part: Path, final: Path) -> None:
        """Make the written, fsynced `part` the file `final`: renamed into place, what the store
        drops beside it gone (`_installed`), then the folder synced."""
        os.replace(part, final)
        self._installed(final)
        fsync_dir(final.parent)

    def _installed(self, final: Path) -> None:
        """What goes once `final` is in place (nothing here)."""

    # -- memory -------------------------------------------------------------------------------

    def adoptable(self, src: np.ndarray, device: str, bandwidth_limit: int | None) -> bool:
        """A dram write may keep `src` itself: writable bytes no copy here shares (a file just
        read, a copy just received), when dram needs no pinning and the write no pacing."""
        if device != "dram" or bandwidth_limit or not src.flags.writeable or self._pinned():
            return False
        with self._lock:
            held = [self._host_view(value) for value in self.memory.values()]
        return not any(np.may_share_memory(src, h) for h in held if h is not None)

    def _pinned(self) -> bool:
        """dram copies are pinned memory (never adopted)."""
        return False

    def _host_view(self, value: Any) -> np.ndarray | None:
        """A memory copy's bytes where they are a host array (else None)."""
        return value if isinstance(value, np.ndarray) else None


def stored_here(cls: type[S], signal: TaskSignal,
                write: Callable[[S], dict[str, Any]]) -> dict[str, Any]:
    """On a worker: `write` into this worker's store of `cls`, the signal done however it ends;
    answers what was stored and the worker that holds it."""
    worker = get_worker()
    try:
        stored = write(cls.of(worker))
    finally:
        signal.done()
    return {**stored, "worker": worker.address}


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(folder: Path) -> None:
    """Make renames and unlinks in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
