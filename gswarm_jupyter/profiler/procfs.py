"""The host's cumulative counters, read the way psutil reads them on Linux, at a fraction of the cost.

Invariant: every number equals what psutil answers from the same /proc text (`cpu_times`,
`virtual_memory().total` and `.available`, and the devices `disk_io_counters()` and
`net_io_counters()` sum), but each /proc file is opened once and re-read with `pread` (the kernel
makes its text afresh on every read from offset 0), the disk list's "is this a whole disk"
check (`/sys/block/<name>`) runs once per device name, and nothing else is read. Where /proc is
not there (macOS, Windows), `open_counters()` answers None and the sampler asks psutil.

Counters come per device (disk and network) so the sampler takes deltas per device, which is
what psutil's `nowrap` sums amount to: a counter that went backwards restarted from zero.
"""

from __future__ import annotations

import os
from typing import NamedTuple

DISK_SECTOR_SIZE = 512  # /proc/diskstats counts 512-byte sectors whatever the device's (psutil too)
CPU_FIELDS = 10  # user nice system idle iowait irq softirq steal guest guest_nice (psutil's scputimes)
READ_SIZE = 1 << 16


class Cpu(NamedTuple):
    """Clock ticks since boot, summed over every field psutil's `cpu_times` has, and the idle part
    (idle + iowait)."""

    total: int
    idle: int


class Memory(NamedTuple):
    total: int
    available: int | None  # None: MemAvailable absent or 0, psutil's own estimate is needed


class ProcCounters:
    """Open descriptors on /proc/stat, /proc/meminfo, /proc/diskstats and /proc/net/dev. Used by one
    thread at a time (the sampler's)."""

    def __init__(self, root: str = "/proc") -> None:
        self._fds: dict[str, int] = {}
        self._whole_disk: dict[bytes, bool] = {}
        try:
            for name in ("stat", "meminfo", "diskstats", "net/dev"):
                self._fds[name] = os.open(f"{root}/{name}", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)

    def __del__(self) -> None:
        self.close()

    def _read(self, name: str) -> bytes:
        return os.pread(self._fds[name], READ_SIZE, 0)

    def cpu(self) -> Cpu:
        text = self._read("stat")
        fields = [int(x) for x in text[: text.index(b"\n")].split()[1 : CPU_FIELDS + 1]]
        return Cpu(sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0))

    def memory(self) -> Memory:
        """psutil's `virtual_memory()` total and available (MemAvailable; MemFree above total)."""
        found: dict[bytes, int] = {}
        for line in self._read("meminfo").split(b"\n", 8)[:8]:
            key, _, rest = line.partition(b":")
            if key in (b"MemTotal", b"MemFree", b"MemAvailable"):
                found[key] = int(rest.split()[0]) * 1024
        total, available = found[b"MemTotal"], found.get(b"MemAvailable") or None
        if available is not None and available > total:
            available = found.get(b"MemFree")
        return Memory(total, available)

    def disks(self) -> dict[bytes, tuple[int, int]]:
        """Bytes read and written per whole disk (partitions left out: their disk counts them)."""
        out: dict[bytes, tuple[int, int]] = {}
        for line in self._read("diskstats").splitlines():
            fields = line.split()
            n = len(fields)
            if n == 14 or n >= 18:  # Linux 2.6+, a disk
                name, read, written = fields[2], fields[5], fields[9]
            elif n == 7:  # Linux 2.6+, a partition
                name, read, written = fields[2], fields[4], fields[6]
            elif n == 15:  # Linux 2.4
                name, read, written = fields[3], fields[6], fields[10]
            else:
                continue
            whole = self._whole_disk.get(name)
            if whole is None:
                path = b"/sys/block/" + name.replace(b"/", b"!")
                whole = self._whole_disk[name] = os.access(path, os.F_OK)
            if whole:
                out[name] = (int(read) * DISK_SECTOR_SIZE, int(written) * DISK_SECTOR_SIZE)
        return out

    def networks(self) -> dict[bytes, tuple[int, int]]:
        """Bytes received and sent per interface."""
        out: dict[bytes, tuple[int, int]] = {}
        for line in self._read("net/dev").splitlines()[2:]:
            colon = line.rfind(b":")
            fields = line[colon + 1 :].split()
            out[line[:colon].strip()] = (int(fields[0]), int(fields[8]))
        return out


def open_counters() -> ProcCounters | None:
    """The /proc reader, or None where there is no Linux /proc to read."""
    try:
        return ProcCounters()
    except OSError:
        return None
