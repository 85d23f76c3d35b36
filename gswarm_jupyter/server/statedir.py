"""A server's own state folder: where it is by default, and the lock that keeps it one server's.

Invariant: one data folder, one running server. The default folder belongs to the server's
`root_dir` (`<jupyter data dir>/gswarm/<root name>-<hash of the root's real path>`), so servers
of different folders never share state; a server holds an exclusive `flock` on `<data_dir>/lock`
for its whole life, and a second server on the same folder is refused at start.

`python -m gswarm_jupyter.server.statedir [ROOT]` prints ROOT's default folder (ROOT defaults to
the current folder); `--reset` deletes it, unless a server is using it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from jupyter_core.paths import jupyter_data_dir

LOCK = "lock"


class DataDirInUse(RuntimeError):
    """Another server holds the data folder's lock."""


def default_data_dir(root_dir: str | Path, data_root: str | Path | None = None) -> Path:
    """The default data folder of a server whose root is `root_dir`."""
    root = Path(root_dir).expanduser().resolve()
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    base = Path(data_root) if data_root is not None else Path(jupyter_data_dir())
    return base / "gswarm" / f"{root.name or 'root'}-{digest}"


class StateLock:
    """The exclusive lock on a data folder, held until `release` (or the process ends)."""

    def __init__(self, data_dir: Path, fd: int) -> None:
        self.data_dir = data_dir
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_dir: Path, owner: dict[str, object]) -> StateLock:
        """Lock `data_dir` (made if missing) for this process, noting `owner` in the lock file."""
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(data_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd)
            os.close(fd)
            advice = "Stop that server, or give this one a folder of its own with " \
                "--GswarmApp.data_dir=PATH."
            raise DataDirInUse(busy_message(data_dir, owner, advice)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), **owner}).encode(), 0)
        return cls(data_dir, fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor drops the flock

    def __del__(self) -> None:
        self.release()


def holder(data_dir: Path) -> dict[str, object] | None:
    """Who holds `data_dir`'s lock now ({} when unknown), or None when nobody does."""
    try:
        fd = os.open(data_dir / LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_owner(fd)
    finally:
        os.close(fd)
    return None


def busy_message(data_dir: Path, owner: dict[str, object], advice: str) -> str:
    """Who uses the folder, then what to do about it."""
    who = f"process {owner['pid']}" if "pid" in owner else "another process"
    if "root_dir" in owner:
        who += f" (serving {owner['root_dir']})"
    return f"gswarm: the data folder {data_dir} is in use by the server {who}. {advice}"


def _read_owner(fd: int) -> dict[str, object]:
    with contextlib.suppress(OSError, ValueError):
        owner = json.loads(os.pread(fd, 4096, 0) or b"{}")
        if isinstance(owner, dict):
            return owner
    return {}


def reset(data_dir: Path) -> str:
    """Delete `data_dir` unless a server is using it; say what was done."""
    owner = holder(data_dir)
    if owner is not None:
        raise DataDirInUse(busy_message(data_dir, owner, "Stop it first; nothing was removed."))
    if not data_dir.exists():
        return f"gswarm: nothing to reset; {data_dir} does not exist"
    shutil.rmtree(data_dir)
    return f"gswarm: removed {data_dir}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gswarm_jupyter.server.statedir",
        description="Print (or with --reset delete) the default gswarm data folder of a root.",
    )
    parser.add_argument("root", nargs="?", default=".", help="the server's root_dir (default: .)")
    parser.add_argument("--reset", action="store_true", help="delete that folder")
    args = parser.parse_args(argv)
    data_dir = default_data_dir(args.root)
    if not args.reset:
        print(data_dir)
        return 0
    try:
        print(reset(data_dir))
    except DataDirInUse as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
