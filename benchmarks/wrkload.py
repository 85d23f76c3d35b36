"""The load generator of the serving benchmarks: `wrk` (C, one thread) with `serve.lua`.

Invariant: the offered load runs in a process of its own, not in the benchmark's, so it takes
none of the benchmark process's interpreter time and little CPU (its own use is counted in
`Run.cpu`); each connection sends its next request when the last one was answered.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .harness import ROOT

SCRIPT = ROOT / "serve.lua"


@dataclass
class Run:
    """One wrk run against one server."""

    rows_per_request: int
    requests: int
    seconds: float
    p50: float  # s
    p99: float  # s
    errors: int
    cpu: float  # s of CPU wrk itself used

    @property
    def rows_per_second(self) -> float:
        return self.requests * self.rows_per_request / self.seconds

    def text(self) -> str:
        return (f"{self.rows_per_second:,.0f} rows/s, p50 {self.p50 * 1000:.1f} ms, p99 "
                f"{self.p99 * 1000:.1f} ms, {self.errors} errors")


def available() -> bool:
    return shutil.which("wrk") is not None


def wrk(url: str, body: Path, rows: int, connections: int, seconds: float,
        token: str = "") -> Run:
    """`connections` keep-alive connections POST the JSON in `body` to `url` for `seconds`."""
    parts = urlsplit(url)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "30s",
         "-s", str(SCRIPT), f"{parts.scheme}://{parts.netloc}", "--", parts.path, str(body),
         token],
        capture_output=True, text=True, check=True, timeout=seconds + 120,
    ).stdout
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(ln for ln in out.splitlines() if ln.startswith("SERVE-JSON "))
    f = json.loads(line.removeprefix("SERVE-JSON "))
    return Run(rows, f["requests"], f["duration_us"] / 1e6, f["p50_us"] / 1e6, f["p99_us"] / 1e6,
               f["status_errors"] + f["socket_errors"],
               now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime)
