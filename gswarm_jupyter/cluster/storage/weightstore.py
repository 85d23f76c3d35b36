"""Model weights on a node: the worker-side tiers (the Dask ops over them are weight_ops.py).

One `WeightStore` per worker (`WeightStore.of(worker)`) holds, per model name and device:

- `disk`: the file `<store>/models/<name>/v<version>.safetensors` (`.pt` for TorchScript, `.tar`
  for a packed Hugging Face model directory, see `hfdir`);
- `dram`: the file's bytes in the worker's memory (pinned when CUDA exists), its tensors numpy
  views of them;
- `gpuN` / `vgpuN`: the file's bytes as a torch uint8 tensor on that device, its tensors views.

Every copy of a model is the same bytes, so a checksum compares any two. Writes go block by block
(`copy_blocks`: progress, cancellation, bandwidth pacing) into a staging copy that becomes the copy
only once complete and checked: a cancelled or failed write leaves nothing behind. On disk a new
file is fsynced and renamed into place before the old version goes, so the copy is never absent.

The serving side reads weights on its own worker with `weight_ops.load_weights(name, device)`
(numpy) or `weight_ops.load_tensors(name, device)` (torch tensors on the device).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...backends import checkpoints, torch_buffers
from ...core.errors import InvalidRequest, NotFound, TaskFailed
from ...core.fetchpolicy import FetchPolicy
from ...core.redact import redact_url
from ..runtime.signals import TaskSignal
from . import hfdir, weightfile
from .httpfetch import READ_BLOCK, Room, download_file
from .weightfile import HUGGINGFACE, SUFFIX, TORCHSCRIPT, Described
from .workerstore import WorkerStore, as_byte_array, copy_blocks, fsync_file


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
    STAGING = ".staging"  # archives unpacked and directories packed, gone however it ends

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        shutil.rmtree(self.folder / self.STAGING, ignore_errors=True)

    # -- where things are ---------------------------------------------------------------------

    def path(self, name: str, version: int, fmt: str) -> Path:
        return self.folder / name / f"v{version}{SUFFIX[fmt]}"

    def disk_file(self, name: str) -> Path | None:
        """The newest version's file of `name` on disk, if any."""
        folder = self.folder / name
        files = [p for p in folder.glob("v*") if p.suffix in _SUFFIXES]
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
            self.write_disk(final.with_name(f"{final.name}.{signal.task_id}.part"), final, src,
                            signal, bandwidth_limit, progress_range, tap=hashed, check=check)
            checksum = None if digest is None else digest.hexdigest()
        else:
            if self.adoptable(src, device, bandwidth_limit):
                dest = src  # bytes just read or received: kept as they are, not copied again

                def sink(offset: int, block: np.ndarray) -> None:
                    pass
            elif isinstance(dest := torch_buffers.allocate(total, device), np.ndarray):
                def sink(offset: int, block: np.ndarray) -> None:
                    dest[offset : offset + len(block)] = block
            else:
                def sink(offset: int, block: np.ndarray) -> None:
                    torch_buffers.copy_block(dest, offset, block)

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

    def _pinned(self) -> bool:
        return torch_buffers.cuda()

    def _host_view(self, value: Any) -> np.ndarray | None:
        return torch_buffers.host_view(value.buffer)

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

    def write_model_dir(
        self,
        name: str,
        version: int,
        device: str,
        path: Path,
        signal: TaskSignal,
        *,
        model_type: str | None = None,
        num_labels: int | None = None,
        expect_checksum: str | None = None,
        limit: int | None = None,
        base: str | None = None,
        progress_range: tuple[float, float] = (0.0, 100.0),
    ) -> dict[str, Any]:
        """Store the Hugging Face model directory at `path` (or the archive holding one, which
        unpacks to at most `limit` bytes) as one packed copy (`hfdir`; the folder's links may
        lead anywhere under `base`). `expect_checksum` may be the archive's sha256 or the packed
        copy's. Nothing stays on failure."""
        staging = self.folder / self.STAGING
        staging.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=staging, prefix=f"{signal.task_id}-") as scratch:
            root, links = path, None if base is None else Path(base)
            if path.is_file():
                if expect_checksum and _sha256_file(path) == expect_checksum.lower():
                    expect_checksum = None  # the archive is the one asked for
                root, links = hfdir.unpack(path, Path(scratch) / "unpacked", limit), None
            signal.check()
            packed = Path(scratch) / f"packed{hfdir.SUFFIX}"
            hfdir.pack(root, packed, model_type, num_labels, base=links)
            signal.check()
            return self.write_file(name, version, device, packed, signal,
                                   expect_checksum=expect_checksum, progress_range=progress_range)

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
                module = torch_buffers.torchscript_module(path.read_bytes())
                return weightfile.TORCHSCRIPT_ARCH, {}, torch_buffers.torchscript_params(module)
            if path.suffix == hfdir.SUFFIX:
                data = np.fromfile(path, dtype=np.uint8)
                return _packed(weightfile.describe(data), data)
            return checkpoints.read_file(path)
        copy = self._memory(name, device)
        d = copy.described
        if d.format == TORCHSCRIPT:
            module = torch_buffers.torchscript_module(self.read(name, device))
            return d.arch, d.config, torch_buffers.torchscript_params(module)
        host = copy.buffer if isinstance(copy.buffer, np.ndarray) else copy.buffer.cpu().numpy()
        if d.format == HUGGINGFACE:
            return _packed(d, host)
        return d.arch, dict(d.config), weightfile.numpy_views(host, d.tensors)

    def tensors(self, name: str, device: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(arch, config, params) with params torch tensors on the copy's device (views of it)."""
        if device == "disk" or (name, device) not in self.memory:
            arch, config, params = self.load(name, device)
            return arch, config, torch_buffers.tensors_of(params)
        copy = self._memory(name, device)
        d = copy.described
        buffer = torch_buffers.as_tensor(copy.buffer)
        if d.format == TORCHSCRIPT:
            on = torch_buffers.device_of(buffer)
            module = torch_buffers.torchscript_module(self.read(name, device), on)
            return d.arch, d.config, dict(module.state_dict())
        config = dict(d.config)
        if d.format == HUGGINGFACE:
            config["files"] = weightfile.packed_files(self.read(name, device))
        return d.arch, config, torch_buffers.torch_views(buffer, d.tensors)

    # -- dropping -----------------------------------------------------------------------------

    def delete(self, name: str, device: str) -> bool:
        if device == "disk":
            return self._drop_disk(name, remove_folder=True)
        with self._lock:
            return self.memory.pop((name, device), None) is not None

    def _installed(self, final: Path) -> None:
        """The other versions of the model go once `final` is in place."""
        self._drop_disk(final.parent.name, keep=final)

    def _drop_disk(self, name: str, remove_folder: bool = False,
                   keep: Path | None = None) -> bool:
        folder = self.folder / name
        if not folder.exists():
            return False
        existed = False
        for p in folder.glob("v*"):
            if p.suffix in _SUFFIXES and p != keep:
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
        hf: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Stream `url` (where `policy` allows) into the node's store, resuming with Range after
        a dropped connection and stopping once it outgrows `room`; check its sha256 and format,
        then make it the copy on `device`. An archive of a Hugging Face model directory is
        unpacked and packed (`write_model_dir`, `hf` its model_type and num_labels). Nothing
        stays on failure."""
        hf = hf or {}
        shown = redact_url(url)
        folder = self.folder / name
        folder.mkdir(parents=True, exist_ok=True)
        part = folder / f"v{version}.{signal.task_id}.download.part"
        try:
            download_file(url, part, policy, room or Room(None, device), signal)
            if hfdir.archive_kind(part) is not None:
                return self.write_model_dir(
                    name, version, device, part, signal, model_type=hf.get("model_type"),
                    num_labels=hf.get("num_labels"), expect_checksum=expect_checksum,
                    limit=unpack_limit(room),
                    progress_range=(90.0, 100.0))
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
                fsync_file(part)
                self.install(part, final)
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


_SUFFIXES = tuple(SUFFIX.values())


def unpack_limit(room: Room | None) -> int | None:
    """Bytes an archive may unpack to: the room of its download, where known."""
    bounds = [] if room is None else [b for b in (room.available, room.limit) if b is not None]
    return min(bounds) if bounds else None


def _packed(d: Described, host: np.ndarray) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    """(arch, config with the text files, tensor views) of a packed Hugging Face model."""
    config = {**d.config, "files": weightfile.packed_files(host)}
    return d.arch, config, weightfile.numpy_views(host, d.tensors)


def _describe(src: np.ndarray) -> Described:
    try:
        return weightfile.describe(src)
    except ValueError as exc:
        raise InvalidRequest(str(exc), {"field": "source_url"}) from None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 * READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()
