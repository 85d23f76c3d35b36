"""Find the gswarm server: `GSWARM_URL`/`GSWARM_TOKEN`, else the connection file the extension
writes into the Jupyter runtime dir (the newest one whose server process is alive)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..core.errors import ResourceUnavailable


def discover(url: str | None = None, token: str | None = None) -> tuple[str, str]:
    """`(url, token)` of the server to talk to; explicit arguments win over the environment."""
    url = url or os.environ.get("GSWARM_URL")
    token = token if token is not None else os.environ.get("GSWARM_TOKEN")
    if url:
        return url, token or ""
    for path in _connection_files():
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if _alive(int(info.get("pid", 0))):
            return info["url"], token or info.get("token", "")
    raise ResourceUnavailable(
        "no gswarm server found: start one with `make run`, or set GSWARM_URL and GSWARM_TOKEN",
        {"runtime_dir": str(_runtime_dir())},
    )


def _runtime_dir() -> Path:
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir())


def _connection_files() -> list[Path]:
    files = list(_runtime_dir().glob("gswarm-*.json"))
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
