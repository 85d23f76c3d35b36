"""Handoff files of same-host copies in /dev/shm: their names per node store, the host's boot
identity that tells one host from another, and the sweep of a node's leftovers at worker start.

Invariant: a node's handoff files all start with `prefix(store)`, so `sweep` removes only that
node's files, never another server's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

SHM = Path("/dev/shm")


def boot_id() -> str | None:
    """This host's identity for this boot (None where the kernel does not say)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def prefix(store: Path | str) -> str:
    """The file name prefix of handoffs written by the node whose store folder is `store`."""
    return f"gswarm-copy-{hashlib.sha256(str(store).encode()).hexdigest()[:16]}-"


def sweep(store: Path | str) -> int:
    """Remove handoff files a previous process of this node left (answers how many)."""
    removed = 0
    try:
        stale = list(SHM.glob(prefix(store) + "*"))
    except OSError:
        return 0
    for path in stale:
        try:
            path.unlink()
            removed += 1
        except OSError:
            pass
    return removed
