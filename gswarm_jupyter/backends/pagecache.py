"""Reading a file ahead into the page cache before its mapping is used.

`prefetch(path)` asks the kernel to read the whole file in the background (`posix_fadvise`
`WILLNEED`) unless sampled pages show it is cached already. The kernel caps each `WILLNEED` call
at one readahead window (the larger of the device's `read_ahead_kb` and `max_sectors_kb`), so
the file is asked for window by window: all of its reads are queued at once and a reader faulting
the mapping page by page finds them done or in flight, instead of waiting on one window after the
other. A hint only: what any read returns never changes, and an error leaves things as they were.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_WINDOW = 128 * 1024  # Linux's default readahead window, where the device's is unknown
SAMPLES = 16  # pages probed for residency before asking for the whole file


def prefetch(path: str | os.PathLike[str]) -> bool:
    """Queue reads of all of `path` unless it is cached; answers whether reads were asked for."""
    if not hasattr(os, "posix_fadvise") or not hasattr(os, "RWF_NOWAIT"):
        return False  # not Linux: nothing to ask
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        info = os.fstat(fd)
        if info.st_size == 0 or cached(fd, info.st_size):
            return False
        window = readahead_window(info.st_dev)
        for offset in range(0, info.st_size, window):
            os.posix_fadvise(fd, offset, min(window, info.st_size - offset), os.POSIX_FADV_WILLNEED)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def cached(fd: int, size: int) -> bool:
    """Whether `SAMPLES` evenly spaced pages of the open file are all in the page cache (a
    one-byte read that may not wait: `RWF_NOWAIT` fails with EAGAIN on a page not cached)."""
    byte = bytearray(1)
    step = max(1, size // SAMPLES)
    for offset in range(0, size, step):
        try:
            if os.preadv(fd, [byte], offset, os.RWF_NOWAIT) != 1:
                return False
        except (BlockingIOError, OSError):
            return False
    return True


def readahead_window(device: int) -> int:
    """Bytes one `WILLNEED` call reads on the block device `device` (`DEFAULT_WINDOW` where its
    queue is not found, e.g. a virtual file system)."""
    block = Path(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}")
    for queue in (block / "queue", block.resolve().parent / "queue"):  # a disk, a partition
        try:
            kib = max(int((queue / name).read_text()) for name in ("read_ahead_kb", "max_sectors_kb"))
        except (OSError, ValueError):
            continue
        return max(kib * 1024, DEFAULT_WINDOW)
    return DEFAULT_WINDOW
