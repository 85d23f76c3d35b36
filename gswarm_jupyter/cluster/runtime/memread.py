"""Copies between two workers of one host by reading the source's memory: the target copies the
source's pages straight into an array of its own (Linux `process_vm_readv`), one copy at memory
speed, where the shared-memory file (`shmcopy`) costs a write into tmpfs's small pages and the
Dask comm two socket copies (a 512 MiB chunk here: ~9 GB/s against ~2.6 GB/s for either).

Invariants:
- the source pins the bytes it exports (`export_copy`): they stay referenced, unchanged and
  mapped until the server releases the pin (`release_copy`), whatever happened; a pin the server
  never released (it died mid-copy) goes at the source's next export after `PIN_SECONDS`;
- the target reads only the process that exported: its pid and its start time (`/proc`) are
  checked before and after the read, so a source that died, its pid taken by another process,
  is never read as if it were the copy;
- the target answers `{"missed": why}` while it does not have the bytes (the kernel refused the
  read: Yama's ptrace_scope 1 and above, a seccomp filter, another user; or the source is gone)
  and the copy goes the next way; once it has them, whatever the write op answers: checks,
  cancellation between blocks and staging stay the write op's, which takes a private array like
  the ones Dask delivers;
- no ptrace permission is widened: where the kernel forbids the read, it is not attempted again
  another way.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from distributed import get_worker

from .signals import TaskSignal

BLOCK = 64 * 2**20  # bytes one read call copies: cancellation and progress between blocks
PIN_SECONDS = 3600.0  # a pin older than this was abandoned by a server that died mid-copy
COUNTER = "_gswarm_memread_copies"  # Worker attribute: copies this worker read from a peer

_pins: dict[str, tuple[float, np.ndarray]] = {}  # token -> (pinned at, bytes), this process
_pins_lock = threading.Lock()
_tokens = itertools.count()


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


def export_copy(read: Callable[..., Any], key: str, device: str) -> dict[str, Any]:
    """On the source worker: pin the copy's bytes (`read(key, device)`) and answer where they
    are, `{"pid", "address", "size", "token"}`."""
    data = np.ascontiguousarray(read(key, device)).reshape(-1).view(np.uint8)
    now = time.monotonic()
    with _pins_lock:
        for stale in [t for t, (at, _) in _pins.items() if now - at > PIN_SECONDS]:
            del _pins[stale]
        token = f"{os.getpid()}-{next(_tokens)}"
        _pins[token] = (now, data)
    return {"pid": os.getpid(), "started": started(os.getpid()), "address": data.ctypes.data,
            "size": int(data.nbytes), "token": token}


def import_copy(handoff: dict[str, Any], write: Callable[..., Any], key: str, device: str,
                signal: TaskSignal, *args: Any) -> dict[str, Any]:
    """On the target worker: read the pinned bytes into a new array, block by block (a cancel
    stops it between blocks), then `write(key, device, array, signal, *args)`;
    `{"missed": why}` while it does not have the bytes."""
    pid, size = int(handoff["pid"]), int(handoff["size"])
    if started(pid) != handoff["started"]:
        return {"missed": f"process {pid} is not the source that exported the copy"}
    data = np.empty(size, dtype=np.uint8)
    missed = read_into(data, pid, int(handoff["address"]), signal)
    if missed is None and started(pid) != handoff["started"]:
        missed = f"process {pid} ended while its copy was read"
    if missed is not None:
        return {"missed": missed}
    worker = get_worker()
    setattr(worker, COUNTER, getattr(worker, COUNTER, 0) + 1)
    return write(key, device, data, signal, *args)


def read_into(dest: np.ndarray, pid: int, address: int, signal: TaskSignal) -> str | None:
    """Copy `dest.nbytes` bytes at `address` in process `pid` into `dest`; None once done, else
    why not."""
    if _readv is None:
        return "process_vm_readv is not available"
    base, size, done = dest.ctypes.data, int(dest.nbytes), 0
    while done < size:
        signal.check()
        n = min(BLOCK, size - done)
        local, remote = _IOVec(base + done, n), _IOVec(address + done, n)
        got = _readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
        if got <= 0:
            errno = ctypes.get_errno()
            return (f"process_vm_readv of process {pid}: {os.strerror(errno)}" if got < 0
                    else f"process_vm_readv of process {pid} read nothing at byte {done}")
        done += got
    return None


def started(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, `/proc/<pid>/stat`), None if none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return int(stat.rsplit(b")", 1)[1].split()[19])


def release_copy(handoff: dict[str, Any]) -> bool:
    """On the source worker: drop a pin (answers whether it was still there)."""
    with _pins_lock:
        return _pins.pop(handoff["token"], None) is not None


def pinned() -> int:
    """On a worker: how many exports it holds pinned now."""
    with _pins_lock:
        return len(_pins)


def copies_received() -> int:
    """On a worker: how many copies it read from a peer's memory."""
    return int(getattr(get_worker(), COUNTER, 0))
