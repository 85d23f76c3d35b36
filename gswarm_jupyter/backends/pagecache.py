"""Bringing a mapped file's pages in ahead of their first use.

`prefetch(path, arrays)`: when `path` is not in the page cache (sampled pages read with
`RWF_NOWAIT` tell), a daemon thread faults in the pages of `arrays` (views of the file's mapping),
in address order, a `CHUNK` at a time with `madvise(MADV_POPULATE_READ)`, while the caller goes on
building and running the model. The faults take the kernel's readahead path (large folios, one
window queued ahead of the next), so the file arrives at the disk's sequential speed instead of
one fault's read-around window at a time behind the model's compute. The thread holds the arrays
(so the mapping) until done. A hint only: what any read returns never changes, a private mapping
stays private (pages are mapped for reading; a write still copies), and an error ends the thread
quietly. A cached file is left alone (its pages map in as the model uses them).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import threading
from collections.abc import Iterable
from typing import Any

CHUNK = 32 * 1024 * 1024  # bytes per madvise call: a few readahead windows
SAMPLES = 16  # pages probed for residency
MADV_POPULATE_READ = 22  # Linux 5.14+ (absent from Python's mmap module before 3.12 on some builds)


def prefetch(path: str | os.PathLike[str], arrays: Iterable[Any]) -> threading.Thread | None:
    """Start faulting in `arrays` (numpy views of `path`'s mapping) unless `path` is cached;
    answers the thread started, if one was."""
    if not hasattr(os, "RWF_NOWAIT") or _madvise is None:
        return None  # not Linux: nothing to ask
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        if size == 0 or cached(fd, size):
            return None
    finally:
        os.close(fd)
    held = sorted((a for a in arrays if a.nbytes), key=lambda a: a.ctypes.data)
    if not held:
        return None
    thread = threading.Thread(target=_populate, args=(held,), name="gswarm-prefetch", daemon=True)
    thread.start()
    return thread


def cached(fd: int, size: int) -> bool:
    """Whether `SAMPLES` evenly spaced pages of the open file are all in the page cache (a
    one-byte read that may not wait: `RWF_NOWAIT` fails with EAGAIN on a page not cached)."""
    byte = bytearray(1)
    for offset in range(0, size, max(1, size // SAMPLES)):
        try:
            if os.preadv(fd, [byte], offset, os.RWF_NOWAIT) != 1:
                return False
        except OSError:  # EAGAIN: not cached; EOPNOTSUPP: cannot tell
            return False
    return True


def _populate(arrays: list[Any]) -> None:
    page = mmap.PAGESIZE
    done = 0  # the end of what is already asked for (arrays may share pages)
    for array in arrays:
        start = max(array.ctypes.data // page * page, done)
        end = array.ctypes.data + array.nbytes
        for at in range(start, end, CHUNK):
            length = min(CHUNK, end - at)
            if _madvise(ctypes.c_void_p(at), ctypes.c_size_t(length), MADV_POPULATE_READ) != 0:
                return  # EINVAL before Linux 5.14, or the range is gone: stop asking
        done = max(done, -(-end // page) * page)


def _libc_madvise() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        function = libc.madvise
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    function.restype = ctypes.c_int
    return function


_madvise = _libc_madvise()
