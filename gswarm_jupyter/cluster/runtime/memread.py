"""Copies between two workers of one host by reading the source's memory: the target copies the
source's pages straight into an array of its own (Linux `process_vm_readv`), one copy at memory
speed, where the shared-memory file (`shmcopy`) costs a write into tmpfs's small pages and the
Dask comm two socket copies (a 512 MiB chunk here: ~9 GB/s against ~2.6 GB/s for either).

Invariants:
- the source pins the bytes it exports (`export_copy`) under the server's token for the copy:
  they stay referenced, unchanged and mapped until the server releases that token
  (`release_copy`), which it does whatever happened; an export that ends after its release pins
  nothing (`handoffs`); a server that dies mid-copy leaves its pin to the worker's end;
- the target reads only the process that exported: its pid and its start time (`/proc`) are
  checked before and after the read, so a source that died, its pid taken by another process,
  is never read as if it were the copy (a start time that cannot be read: no read);
- the target answers `{"missed": why}` while it does not have the bytes, with `"refused": True`
  where the kernel refused the read (Yama's ptrace_scope 1 and above, a seccomp filter, another
  user), which the engine remembers for that pair of workers; the copy then goes the next way.
  Once it has them, whatever the write op answers: checks, cancellation between blocks and
  staging stay the write op's, which takes a private array like the ones Dask delivers;
- no ptrace permission is asked for or widened (no prctl): the kernel's own rules decide.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from distributed import get_worker

from .handoffs import Handoffs
from .signals import TaskSignal

BLOCK = 64 * 2**20  # bytes one read call copies: cancellation and progress between blocks
COUNTER = "_gswarm_memread_copies"  # Worker attribute: copies this worker read from a peer
REFUSALS = (errno.EPERM, errno.EACCES, errno.ENOSYS)  # the kernel will not let this read happen

_pins: Handoffs[np.ndarray] = Handoffs()  # this process's exported bytes, by the copy's token


class Missed(NamedTuple):
    """Why a read did not happen, and whether the kernel refused it (it will again)."""

    why: str
    refused: bool = False


class _IOVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


def _libc_readv() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.process_vm_readv
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.POINTER(_IOVec), ctypes.c_ulong,
                   ctypes.POINTER(_IOVec), ctypes.c_ulong, ctypes.c_ulong]
    fn.restype = ctypes.c_ssize_t
    return fn  # type: ignore[no-any-return]


_readv = _libc_readv()


def export_copy(read: Callable[..., Any], key: str, device: str, token: str) -> dict[str, Any]:
    """On the source worker: pin the copy's bytes (`read(key, device)`) under `token` and answer
    where they are, `{"pid", "started", "address", "size"}`; `{"missed": why}` and no pin when
    the copy was given up meanwhile or this process's start time cannot be read."""
    began = started(os.getpid())
    if began is None:
        return {"missed": "this process's start time cannot be read from /proc"}
    data = np.ascontiguousarray(read(key, device)).reshape(-1).view(np.uint8)
    if not _pins.hold(token, data):
        return {"missed": "the copy was given up before its bytes were pinned"}
    return {"pid": os.getpid(), "started": began, "address": data.ctypes.data,
            "size": int(data.nbytes)}


def import_copy(handoff: dict[str, Any], write: Callable[..., Any], key: str, device: str,
                signal: TaskSignal, *args: Any) -> dict[str, Any]:
    """On the target worker: read the pinned bytes into a new array, block by block (a cancel
    stops it between blocks), then `write(key, device, array, signal, *args)`;
    `{"missed": why, "refused": bool}` while it does not have the bytes."""
    pid, size, began = int(handoff["pid"]), int(handoff["size"]), handoff["started"]
    if began is None or started(pid) != began:
        return {"missed": f"process {pid} is not the source that exported the copy",
                "refused": False}
    data = np.empty(size, dtype=np.uint8)
    missed = read_into(data, pid, int(handoff["address"]), signal)
    if missed is None and started(pid) != began:
        missed = Missed(f"process {pid} ended while its copy was read")
    if missed is not None:
        return {"missed": missed.why, "refused": missed.refused}
    worker = get_worker()
    setattr(worker, COUNTER, getattr(worker, COUNTER, 0) + 1)
    return write(key, device, data, signal, *args)


def read_into(dest: np.ndarray, pid: int, address: int, signal: TaskSignal) -> Missed | None:
    """Copy `dest.nbytes` bytes at `address` in process `pid` into `dest`; None once done, else
    why not."""
    if _readv is None:
        return Missed("process_vm_readv is not available", refused=True)
    base, size, done = dest.ctypes.data, int(dest.nbytes), 0
    while done < size:
        signal.check()
        n = min(BLOCK, size - done)
        local, remote = _IOVec(base + done, n), _IOVec(address + done, n)
        got = _readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
        if got < 0:
            code = ctypes.get_errno()
            return Missed(f"process_vm_readv of process {pid}: {os.strerror(code)}",
                          refused=code in REFUSALS)
        if got == 0:
            return Missed(f"process_vm_readv of process {pid} read nothing at byte {done}")
        done += got
    return None


def started(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, `/proc/<pid>/stat`), None if none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return int(stat.rsplit(b")", 1)[1].split()[19])


def release_copy(token: str) -> bool:
    """On the source worker: drop the copy's pin, and refuse a late one (answers whether there
    was a pin)."""
    return _pins.release(token) is not None


def pinned() -> int:
    """On a worker: how many exports it holds pinned now."""
    return len(_pins)


def copies_received() -> int:
    """On a worker: how many copies it read from a peer's memory."""
    return int(getattr(get_worker(), COUNTER, 0))
