"""Model weights on a node: the worker-side tiers and the Dask ops over them.

One `WeightStore` per worker (`WeightStore.of(worker)`) holds, per model name and device:

- `disk`: the file `<store>/models/<name>/v<version>.safetensors` (`.pt` for TorchScript);
- `dram`: the file's bytes in the worker's memory (pinned when CUDA exists), its tensors numpy
  views of them;
- `gpuN` / `vgpuN`: the file's bytes as a torch uint8 tensor on that device, its tensors views.

Every copy of a model is the same bytes, so a checksum compares any two. Writes go block by block
(`copy_blocks`: progress, cancellation, bandwidth pacing) into a staging copy that becomes the copy
only once complete and checked: a cancelled or failed write leaves nothing behind. On disk a new
file is fsynced and renamed into place before the old version goes, so the copy is never absent.

The serving side reads weights on its own worker with `load_weights(name, device)` (numpy) or
`load_tensors(name, device)` (torch tensors on the device).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from distributed import get_worker

from ...backends import checkpoints
from ...backends.devices import framework_device
from ...core.errors import InvalidRequest, NetworkError, NotFound, TaskFailed
from ...core.fetchpolicy import FetchPolicy
from ...core.redact import redact_url
from ..runtime.signals import TaskSignal, worker_op
from . import weightfile
from .httpfetch import Room, open_url, status_error
from .weightfile import SAFETENSORS, SUFFIX, TORCHSCRIPT, Described
from .workerstore import WorkerStore, as_byte_array, copy_blocks

READ_BLOCK = 1024 * 1024
DOWNLOAD_ATTEMPTS = 5  # a dropped connection is resumed with a Range request this many times



@dataclass(slots=True)
class MemoryCopy:
    version: int
    described: Described
    buffer: Any  # np.ndarray (dram) or torch.Tensor (gpuN, vgpuN): the whole file's bytes

    @property
    def size(self) -> int:
        return int(self.buffer.nbytes if isinstance(self.buffer, np.ndarray)
                   else self.buffer.numel())


class WeightStore(WorkerStore):
    """One node's model copies (`memory` maps (name, device) to a `MemoryCopy`)."""

    ATTRIBUTE = "_gswarm_weight_store"
    SUBFOLDER = "models"
    STALE = "*/*.part"

    # -- where things are ---------------------------------------------------------------------

    def path(self, name: str, version: int, fmt: str) -> Path:
        return self.folder / name / f"v{version}{SUFFIX[fmt]}"

    def disk_file(self, name: str) -> Path | None:
        """The newest version's file of `name` on disk, if any."""
        folder = self.folder / name
        files = [p for p in folder.glob("v*") if p.suffix in (".safetensors", ".pt")]
        files = [p for p in files if p.stem[1:].isdigit()]
        return max(files, key=lambda p: int(p.stem[1:]), default=None)

    def has(self, name: str, device: str) -> bool:
        if device == "disk":
            return self.disk_file(name) is not None
        return (name, device) in self.memory

    def copies(self) -> dict[str, list[str]]:
        """Model name -> devices holding a copy here."""
        out: dict[str, list[str]] = {}
        for p in sorted(self.folder.glob("*")):
            if p.is_dir() and self.disk_file(p.name) is not None:
                out.setdefault(p.name, []).append("disk")
        for name, device in sorted(self.memory):
            out.setdefault(name, []).append(device)
        return out

    # -- writing ------------------------------------------------------------------------------

    def write(
        self,
        name: str,
        version: int,
        device: str,
        data: Any,
        signal: TaskSignal,
        *,
        bandwidth_limit: int | None = None,
        expect_checksum: str | None = None,
        measure: bool = True,
        progress_range: tuple[float, float] = (0.0, 100.0),
    ) -> dict[str, Any]:
        """Store the file bytes `data` as the copy of `name` on `device`; answers what was stored
        (size, format, arch, config, and the sha256 when `measure` or `expect_checksum`)."""
        src = as_byte_array(data)
        described = _describe(src)
        total = int(src.nbytes)
        digest = hashlib.sha256() if (measure or expect_checksum) else None

        def hashed(sink: Any) -> Any:
            def feed(offset: int, block: np.ndarray) -> None:
                if digest is not None:
                    digest.update(block)
                sink(offset, block)

            return feed

        def check() -> str | None:
            checksum = None if digest is None else digest.hexdigest()
            if expect_checksum and checksum != expect_checksum.lower():
                raise TaskFailed(
                    f"checksum mismatch for {name}: expected {expect_checksum}, got {checksum}",
                    {"field": "checksum", "expected": expect_checksum, "got": checksum,
                     "model_name": name},
                )
            return checksum

        if device == "disk":
            final = self.path(name, version, described.format)
            final.parent.mkdir(parents=True, exist_ok=True)
            part = final.with_name(f"{final.name}.{signal.task_id}.part")
            try:
                with open(part, "wb") as f:
                    copy_blocks(src, hashed(lambda off, blk: f.write(blk)), total, signal,
                                bandwidth_limit, progress_range)
                    f.flush()
                    os.fsync(f.fileno())
                checksum = check()
                self._install(name, part, final)
            finally:
                part.unlink(missing_ok=True)
        else:
            if self._adoptable(src, device, bandwidth_limit):
                dest = src  # bytes just read or received: kept as they are, not copied again

                def sink(offset: int, block: np.ndarray) -> None:
                    pass
            elif isinstance(dest := _allocate(total, device), np.ndarray):
                def sink(offset: int, block: np.ndarray) -> None:
                    dest[offset : offset + len(block)] = block
            else:
                import torch

                def sink(offset: int, block: np.ndarray) -> None:
                    dest[offset : offset + len(block)].copy_(torch.from_numpy(block.copy()))

            copy_blocks(src, hashed(sink), total, signal, bandwidth_limit, progress_range)
            checksum = check()
            with self._lock:
                self.memory[(name, device)] = MemoryCopy(version, described, dest)
        return {
            "size": total,
            "checksum": checksum,
            "format": described.format,
            "metadata": described.metadata(),
        }

    def _adoptable(self, src: np.ndarray, device: str, bandwidth_limit: int | None) -> bool:
        """A dram write may keep `src` itself: writable bytes no copy here shares (a file just
        read, a copy just received), when dram needs no pinning and the write no pacing."""
        if device != "dram" or bandwidth_limit or not src.flags.writeable or _cuda():
            return False
        with self._lock:
            held = [c.buffer for c in self.memory.values()]
        return not any(np.may_share_memory(src, _host_view(b)) for b in held)

    def write_file(
        self,
        name: str,
        version: int,
        device: str,
        path: Path,
        signal: TaskSignal,
        *,
        expect_checksum: str | None = None,
        progress_range: tuple[float, float] = (0.0, 100.0),
    ) -> dict[str, Any]:
        """Store the file at `path` as a copy (read into memory, or copied to the store)."""
        data = np.fromfile(path, dtype=np.uint8)
        return self.write(name, version, device, data, signal, expect_checksum=expect_checksum,
                          progress_range=progress_range)

    # -- reading ------------------------------------------------------------------------------

    def read(self, name: str, device: str) -> np.ndarray:
        """The copy's file bytes as a flat uint8 array (a view where the copy is in host memory)."""
        if device == "disk":
            path = self.disk_file(name)
            if path is None:
                raise NotFound(f"model {name} has no copy on disk here", {"model_name": name})
            return np.fromfile(path, dtype=np.uint8)
        copy = self._memory(name, device)
        if isinstance(copy.buffer, np.ndarray):
            return copy.buffer
        return copy.buffer.cpu().numpy()

    def checksum(self, name: str, device: str) -> str:
        digest = hashlib.sha256()
        data = self.read(name, device)
        for offset in range(0, len(data), 8 * READ_BLOCK):
            digest.update(data[offset : offset + 8 * READ_BLOCK])
        return digest.hexdigest()

    def load(self, name: str, device: str) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
        """(arch, config, params) of the copy on `device`, params as numpy arrays: views of the
        memory copy, the zero-copy safetensors path for disk, host copies for GPU copies."""
        if device == "disk":
            path = self.disk_file(name)
            if path is None:
                raise NotFound(f"model {name} has no copy on disk here", {"model_name": name})
            if path.suffix == ".pt":
                module = weightfile.torchscript_module(path.read_bytes())
                return weightfile.TORCHSCRIPT_ARCH, {}, weightfile.torchscript_params(module)
            return checkpoints.read_file(path)
        copy = self._memory(name, device)
        d = copy.described
        if d.format == TORCHSCRIPT:
            module = weightfile.torchscript_module(self.read(name, device))
            return d.arch, d.config, weightfile.torchscript_params(module)
        host = copy.buffer if isinstance(copy.buffer, np.ndarray) else copy.buffer.cpu().numpy()
        return d.arch, dict(d.config), weightfile.numpy_views(host, d.tensors)

    def tensors(self, name: str, device: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(arch, config, params) with params torch tensors on the copy's device (views of it)."""
        import torch

        if device == "disk" or (name, device) not in self.memory:
            arch, config, params = self.load(name, device)
            return arch, config, {k: torch.from_numpy(np.array(v)) for k, v in params.items()}
        copy = self._memory(name, device)
        d = copy.described
        buffer = copy.buffer
        if isinstance(buffer, np.ndarray):
            buffer = torch.from_numpy(buffer)
        if d.format == TORCHSCRIPT:
            module = weightfile.torchscript_module(self.read(name, device), str(buffer.device))
            return d.arch, d.config, dict(module.state_dict())
        return d.arch, dict(d.config), weightfile.torch_views(buffer, d.tensors)

    # -- dropping -----------------------------------------------------------------------------

    def delete(self, name: str, device: str) -> bool:
        if device == "disk":
            return self._drop_disk(name, remove_folder=True)
        with self._lock:
            return self.memory.pop((name, device), None) is not None

    def _install(self, name: str, part: Path, final: Path) -> None:
        """Make the written, fsynced `part` the disk copy: renamed into place first, then the
        other versions dropped, then the folder synced (a reader always finds one whole file)."""
        os.replace(part, final)
        self._drop_disk(name, keep=final)
        _fsync_dir(final.parent)

    def _drop_disk(self, name: str, remove_folder: bool = False,
                   keep: Path | None = None) -> bool:
        folder = self.folder / name
        if not folder.exists():
            return False
        existed = False
        for p in folder.glob("v*"):
            if p.suffix in (".safetensors", ".pt") and p != keep:
                p.unlink(missing_ok=True)
                existed = True
        if remove_folder and not any(folder.glob("*.part")):
            shutil.rmtree(folder, ignore_errors=True)
        return existed

    def _memory(self, name: str, device: str) -> MemoryCopy:
        copy = self.memory.get((name, device))
        if copy is None:
            raise NotFound(f"model {name} has no copy on {device} here",
                           {"model_name": name, "device": device})
        return copy

    # -- downloads ----------------------------------------------------------------------------

    def download(
        self,
        name: str,
        version: int,
        device: str,
        url: str,
        signal: TaskSignal,
        *,
        policy: FetchPolicy,
        room: Room | None = None,
        expect_checksum: str | None = None,
    ) -> dict[str, Any]:
        """Stream `url` (where `policy` allows) into the node's store, resuming with Range after
        a dropped connection and stopping once it outgrows `room`; check its sha256 and format,
        then make it the copy on `device`. Nothing stays on failure."""
        shown = redact_url(url)
        folder = self.folder / name
        folder.mkdir(parents=True, exist_ok=True)
        part = folder / f"v{version}.{signal.task_id}.download.part"
        try:
            _fetch(url, part, signal, policy, room or Room(None, device))
            checksum = _sha256_file(part)
            if expect_checksum and checksum != expect_checksum.lower():
                raise TaskFailed(
                    f"checksum mismatch for {shown}: expected {expect_checksum}, got {checksum}",
                    {"field": "checksum", "expected": expect_checksum, "got": checksum,
                     "url": shown},
                )
            try:
                described = weightfile.describe_file(str(part))
            except ValueError as exc:
                raise TaskFailed(f"{shown}: {exc}", {"url": shown}) from None
            if device == "disk":
                final = self.path(name, version, described.format)
                _fsync_file(part)
                self._install(name, part, final)
                signal.progress(100)
                return {
                    "size": final.stat().st_size,
                    "checksum": checksum,
                    "format": described.format,
                    "metadata": described.metadata(),
                }
            return self.write_file(name, version, device, part, signal,
                                   progress_range=(90.0, 100.0))
        finally:
            part.unlink(missing_ok=True)


def _describe(src: np.ndarray) -> Described:
    try:
        return weightfile.describe(src)
    except ValueError as exc:
        raise InvalidRequest(str(exc), {"field": "source_url"}) from None


def _fetch(url: str, part: Path, signal: TaskSignal, policy: FetchPolicy, room: Room) -> None:
    """Download `url` into `part`, resuming after dropped connections; progress 0..90."""
    shown = redact_url(url)
    attempts = 0
    total: int | None = None
    while True:
        have = part.stat().st_size if part.exists() else 0
        try:
            response = open_url(url, policy, {"Range": f"bytes={have}-"} if have else None)
        except NetworkError:  # unreachable for now (a policy refusal is not retried)
            attempts += 1
            if attempts >= DOWNLOAD_ATTEMPTS:
                raise
            time.sleep(min(2.0, 0.2 * attempts))
            continue
        with response:
            if response.status >= 400:
                if response.status == 416 and have and total == have:
                    return
                raise status_error(response)
            resumed = have and response.status == 206
            length = response.headers.get("Content-Length")
            if resumed:
                content_range = response.headers.get("Content-Range", "")
                if not content_range.startswith(f"bytes {have}-"):
                    resumed = False
                full = content_range.rpartition("/")[2]
                total = int(full) if full.isdigit() else None
            else:
                total = int(length) if length and length.isdigit() else None
            if total is not None:
                room.check(total, url, declared=True)
            done = have if resumed else 0
            try:
                with open(part, "ab" if resumed else "wb") as f:
                    while True:
                        signal.check()
                        block = response.read(READ_BLOCK)
                        if not block:
                            break
                        f.write(block)
                        done += len(block)
                        room.check(done, url)
                        if total:
                            signal.progress(90 * min(1.0, done / total))
            except (OSError, http.client.HTTPException) as exc:
                attempts += 1
                if attempts >= DOWNLOAD_ATTEMPTS:
                    raise NetworkError(f"{shown} broke off after {done} bytes: {exc}",
                                       {"url": shown}) from None
                continue
        if total is None or done == total:
            return
        attempts += 1  # the source ended early: resume, or give up
        if attempts >= DOWNLOAD_ATTEMPTS:
            raise NetworkError(f"{shown} ended after {done} of {total} bytes", {"url": shown})


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    """Make renames and unlinks in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 * READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _allocate(size: int, device: str) -> Any:
    """An empty byte buffer on `device`: dram pinned host memory when CUDA exists."""
    if device == "dram":
        if _cuda():
            import torch

            return torch.empty(size, dtype=torch.uint8).pin_memory().numpy()
        return np.empty(size, dtype=np.uint8)
    import torch

    return torch.empty(size, dtype=torch.uint8, device=framework_device(device))


def _host_view(buffer: Any) -> Any:
    """A memory copy's buffer as numpy where it is in host memory (else a placeholder)."""
    if isinstance(buffer, np.ndarray):
        return buffer
    return buffer.numpy() if buffer.device.type == "cpu" else np.empty(0, dtype=np.uint8)


def _cuda() -> bool:
    """CUDA is usable here (torch imported only where a GPU device file exists)."""
    import glob

    if not glob.glob("/dev/nvidia[0-9]*"):
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())




# -- Dask ops (run on a worker) -----------------------------------------------------------------


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
    worker = get_worker()
    store = WeightStore.of(worker)
    try:
        kind = source["kind"]
        if kind == "builtin":
            data = checkpoints.builtin_checkpoint(source["url"])
            stored = store.write(name, version, device, data, signal,
                                 expect_checksum=expect_checksum)
        elif kind == "file":
            stored = store.write_file(name, version, device, Path(source["path"]), signal,
                                      expect_checksum=expect_checksum)
        elif kind == "http":
            stored = store.download(name, version, device, source["url"], signal,
                                    policy=policy or FetchPolicy(), room=room,
                                    expect_checksum=expect_checksum)
        else:
            raise InvalidRequest(f"unknown source kind {kind!r}", {"field": "source_url"})
    finally:
        signal.done()
    return {**stored, "worker": worker.address}


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
    worker = get_worker()
    try:
        stored = WeightStore.of(worker).write(
            name, version, device, data, signal, bandwidth_limit=bandwidth_limit,
            expect_checksum=expect_checksum, measure=False,
        )
    finally:
        signal.done()
    return {**stored, "worker": worker.address}


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


__all__ = [
    "SAFETENSORS",
    "TORCHSCRIPT",
    "WeightStore",
    "acquire_weights",
    "drop_weights",
    "held_weights",
    "load_tensors",
    "load_weights",
    "read_weights",
    "weights_checksum",
    "write_weights",
]
