"""Copies between two workers of one host through a shared-memory file instead of the Dask comm
(mutual TLS encrypts every byte of a worker-to-worker copy; two processes of one host need not).

Invariants:
- a handoff file lives under /dev/shm, is created with O_EXCL and mode 0600 under a name unique
  to this server's node store and the copy (`prefix` + the server's token for the copy), and
  never outlives the copy: the target unlinks it as soon as it opened it, the server releases
  the token on the source whatever happened (`release_copy`: the file goes, and an export still
  writing it drops it, `handoffs`), and a worker's start sweeps its node's leftovers (`sweep`);
- the source answers `{"path", "size"}` or `{"missed": why}` (no room, no /dev/shm, a failed
  write: nothing left behind); the target answers `{"missed": why}` while it does not have the
  bytes yet, and then whatever the write op answers: checks, cancellation and staging stay the
  write op's, which takes the bytes as a private array like the ones Dask delivers (mapped
  copy-on-write: a dram copy kept as it came stays in the unlinked file's pages, which count in
  /dev/shm until the copy goes).
"""

from __future__ import annotations

import logging
import mmap
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from distributed import Worker, get_worker

from .handoffs import Handoffs
from .shmfiles import SHM, prefix
from .signals import TaskSignal

log = logging.getLogger(__name__)

HEADROOM = 64 * 2**20  # left free in /dev/shm beyond the payload
COUNTER = "_gswarm_shm_copies"  # Worker attribute: copies this worker received through /dev/shm

_files: Handoffs[Path] = Handoffs()  # this process's handoff files, by the copy's token


def _store(worker: Worker) -> str:
    """The node agent's store folder (the worker's name before the agent set up)."""
    from .agent import PLUGIN_NAME

    store = getattr(worker.plugins.get(PLUGIN_NAME), "store", None)
    return str(store or worker.name)


def export_copy(read: Callable[..., Any], key: str, device: str, token: str) -> dict[str, Any]:
    """On the source worker: the copy's bytes (`read(key, device)`) written into a new handoff
    file named for `token`; `{"missed": why}` and no file when that cannot be done or the copy
    was given up meanwhile."""
    data = np.ascontiguousarray(read(key, device)).reshape(-1).view(np.uint8)
    size = int(data.nbytes)
    try:
        if shutil.disk_usage(SHM).free < size + HEADROOM:
            return {"missed": f"{SHM} has not {size} bytes free"}
    except OSError as exc:
        return {"missed": f"{SHM}: {exc}"}
    path = _path(token)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        return {"missed": f"cannot create {path}: {exc}"}
    try:
        view, done = memoryview(data), 0
        while done < size:
            done += os.write(fd, view[done:])
    except OSError as exc:
        path.unlink(missing_ok=True)
        return {"missed": f"cannot write {path}: {exc}"}
    finally:
        os.close(fd)
    if not _files.hold(token, path):  # released while it was written: not ours to keep
        path.unlink(missing_ok=True)
        return {"missed": "the copy was given up before its file was written"}
    return {"path": str(path), "size": size}


def import_copy(handoff: dict[str, Any], write: Callable[..., Any], key: str, device: str,
                signal: TaskSignal, *args: Any) -> dict[str, Any]:
    """On the target worker: map the handoff file copy-on-write (a private, writable array
    whose pages stay shared with the file until written), unlink it, then
    `write(key, device, array, signal, *args)`; `{"missed": why}` before the bytes are here."""
    path, size = Path(handoff["path"]), int(handoff["size"])
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        return {"missed": f"cannot open {path}: {exc}"}
    try:
        path.unlink(missing_ok=True)
        if os.fstat(fd).st_size != size:
            return {"missed": f"{path} does not hold {size} bytes"}
        data = (np.frombuffer(mmap.mmap(fd, size, access=mmap.ACCESS_COPY), dtype=np.uint8)
                if size else np.empty(0, dtype=np.uint8))
    except (OSError, ValueError) as exc:
        return {"missed": f"cannot map {path}: {exc}"}
    finally:
        os.close(fd)
    worker = get_worker()
    setattr(worker, COUNTER, getattr(worker, COUNTER, 0) + 1)
    return write(key, device, data, signal, *args)


def release_copy(token: str) -> bool:
    """On the source worker: remove the copy's handoff file, and refuse a late one (answers
    whether the file was still there)."""
    _files.release(token)
    try:
        os.unlink(_path(token))  # also a file whose export is still writing it
        return True
    except FileNotFoundError:
        return False


def _path(token: str) -> Path:
    return SHM / f"{prefix(_store(get_worker()))}{token}"


def copies_received() -> int:
    """On a worker: how many copies it received through /dev/shm."""
    return int(getattr(get_worker(), COUNTER, 0))
