"""The connection file a kernel's SDK finds the server by: `{runtime_dir}/gswarm-{pid}.json`."""

from __future__ import annotations

import json
import os
from pathlib import Path


def connection_path(runtime_dir: str, pid: int | None = None) -> Path:
    return Path(runtime_dir) / f"gswarm-{pid or os.getpid()}.json"


def write_connection_file(runtime_dir: str, url: str, token: str) -> Path:
    """Write it readable by its owner only: it holds the token."""
    path = connection_path(runtime_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "token": token, "pid": os.getpid()}, f)
    return path
