"""The bytes of the data pool, on a node: worker-side store and the Dask ops over it.

`dram` copies are numpy arrays in the worker's memory, `disk` copies files in the node's store
folder (`<store>/chunks/<chunk_id>.bin`), `gpuN`/`vgpuN` copies torch tensors on that device.
Writes go block by block into a staging copy (an array, or a `.part` file) that becomes the chunk
only once complete, checking for cancellation and reporting progress between blocks: a cancelled
or failed write leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from distributed import get_worker

from ...backends import torch_buffers
from ...core.chunks import check_layout
from ...core.errors import NotFound
from ...core.fetchpolicy import FetchPolicy
from ..runtime.signals import TaskSignal, worker_op
from .httpfetch import Room, download_bytes
from .workerstore import WorkerStore, as_byte_array, copy_blocks, stored_here

Layout = tuple[list[int], str]  # (shape, dtype) of a tensor chunk

class ChunkStore(WorkerStore):
    """One node's chunks."""

    ATTRIBUTE = "_gswarm_chunk_store"
    SUBFOLDER = "chunks"

    def path(self, chunk_id: str) -> Path:
        return self.folder / f"{chunk_id}.bin"

    def has(self, chunk_id: str, device: str) -> bool:
        if device == "disk":
            return self.path(chunk_id).exists()
        return (chunk_id, device) in self.memory

    def write(
        self,
        chunk_id: str,
        device: str,
        data: Any,
        signal: TaskSignal,
        layout: Layout | None = None,
        bandwidth_limit: int | None = None,
        progress_range: tuple[float, float] = (0.0, 100.0),
    ) -> int:
        """Store `data` as the chunk's copy on `device`; answer its size in bytes."""
        src = as_byte_array(data)
        total = int(src.nbytes)
        if device == "disk":
            self.write_disk(self.folder / f"{chunk_id}.{signal.task_id}.part",
                            self.path(chunk_id), src, signal, bandwidth_limit, progress_range)
            return total
        if self.adoptable(src, device, bandwidth_limit):
            # A worker-to-worker transfer delivers a private, complete copy: keep it rather than
            # copy it again (a 512 MB copy costs more than the transfer itself on a small VM).
            signal.check()
            signal.progress(progress_range[1])
            dest = src
        else:
            dest = np.empty(total, dtype=np.uint8)
            copy_blocks(src, lambda off, blk: dest.__setitem__(slice(off, off + len(blk)), blk),
                        total, signal, bandwidth_limit, progress_range)
        value: Any = _typed(dest, layout)
        if device != "dram":
            value = torch_buffers.to_device(dest if value is dest else value, device)
        with self._lock:
            self.memory[(chunk_id, device)] = value
        return total

    def read(self, chunk_id: str, device: str) -> np.ndarray:
        """The copy's bytes as a flat uint8 array (a view where the copy is in memory)."""
        if device == "disk":
            path = self.path(chunk_id)
            if not path.exists():
                raise NotFound(f"{chunk_id} has no copy on disk here", {"chunk_id": chunk_id})
            return np.fromfile(path, dtype=np.uint8)
        value = self.memory.get((chunk_id, device))
        if value is None:
            raise NotFound(f"{chunk_id} has no copy on {device} here", {"chunk_id": chunk_id})
        return as_byte_array(value)

    def delete(self, chunk_id: str, device: str) -> bool:
        if device == "disk":
            path = self.path(chunk_id)
            existed = path.exists()
            path.unlink(missing_ok=True)
            return existed
        with self._lock:
            return self.memory.pop((chunk_id, device), None) is not None


def _typed(flat: np.ndarray, layout: Layout | None) -> np.ndarray:
    if layout is None:
        return flat
    shape, dtype = layout
    try:
        return flat.view(np.dtype(dtype)).reshape(shape)
    except TypeError:  # a dtype numpy lacks (bfloat16): keep the bytes
        return flat


# -- Dask ops (run on a worker) -----------------------------------------------------------------


@worker_op
def put_chunk(
    chunk_id: str,
    device: str,
    data: Any,
    signal: TaskSignal,
    layout: Layout | None = None,
    bandwidth_limit: int | None = None,
) -> dict[str, Any]:
    """Write one copy; answers its size and the worker that holds it."""
    return stored_here(ChunkStore, signal, lambda store: {
        "size": store.write(chunk_id, device, data, signal, layout, bandwidth_limit)})


@worker_op
def get_chunk(chunk_id: str, device: str) -> np.ndarray:
    """One copy's bytes (for a transfer, Dask carries them to the target worker)."""
    return ChunkStore.of(get_worker()).read(chunk_id, device)


@worker_op
def drop_chunk(chunk_id: str, device: str) -> bool:
    return ChunkStore.of(get_worker()).delete(chunk_id, device)


@worker_op
def fetch_chunk(
    chunk_id: str,
    device: str,
    url: str,
    signal: TaskSignal,
    layout: Layout | None,
    room: Room,
    policy: FetchPolicy,
) -> dict[str, Any]:
    """Download `url` (http or https, where `policy` allows) into one copy, with progress,
    stopping once it outgrows `room`; nothing stays on failure."""
    def write(store: ChunkStore) -> dict[str, Any]:
        data = download_bytes(url, policy, room, signal)
        if layout is not None:
            check_layout("tensor", len(data), layout[0], layout[1])
        return {"size": store.write(chunk_id, device, data, signal, layout,
                                    progress_range=(90.0, 100.0))}

    return stored_here(ChunkStore, signal, write)
