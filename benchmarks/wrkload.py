"""The load generator of the serving benchmarks: `wrk` (C, one thread) with `serve.lua`.

Invariant: the offered load runs in a process of its own, not in the benchmark's, so it takes
none of the benchmark process's interpreter time and little CPU (its own use is counted in
`Run.cpu`); each connection sends its next request when the last one was answered.
"""

from __future__ import annotations

import json
import os
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
    served_cpu: dict[str, float] | None = None  # s of CPU each watched process used meanwhile

    @property
    def rows_per_second(self) -> float:
        return self.requests * self.rows_per_request / self.seconds

    def text(self) -> str:
        return (f"{self.rows_per_second:,.0f} rows/s, p50 {self.p50 * 1000:.1f} ms, p99 "
                f"{self.p99 * 1000:.1f} ms, {self.errors} errors")


def available() -> bool:
    return shutil.which("wrk") is not None


def process_tree(pid: int) -> list[int]:
    """`pid` and every process descending from it (Linux /proc)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo.extend(parents.get(tree[-1], []))
    return tree


def worker_pids(server_pid: int) -> list[int]:
    """The Dask worker processes under the server `server_pid` (spawned by its nannies)."""
    return [pid for pid in process_tree(server_pid) if _name(pid) == "worker"]


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _name(pid: int) -> str:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return str(pid)
    text = b" ".join(args).decode(errors="replace")
    return "worker" if "spawn_main" in text else "server"


def wrk(url: str, body: Path, rows: int, connections: int, seconds: float,
        token: str = "", watch: int | None = None) -> Run:
    """`connections` keep-alive connections POST the JSON in `body` to `url` for `seconds`;
    with `watch`, the CPU that process and its descendants used meanwhile, by kind (the server
    process, its worker processes)."""
    parts = urlsplit(url)
    watched = process_tree(watch) if watch is not None else []
    before = {pid: _cpu_seconds(pid) for pid in watched}
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "30s",
         "-s", str(SCRIPT), f"{parts.scheme}://{parts.netloc}", "--", parts.path, str(body),
         token],
        capture_output=True, text=True, check=True, timeout=seconds + 120,
    ).stdout
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    served: dict[str, float] | None = None
    if watched:
        served = {}
        for pid in watched:
            kind = _name(pid)
            served[kind] = served.get(kind, 0.0) + _cpu_seconds(pid) - before[pid]
    line = next(ln for ln in out.splitlines() if ln.startswith("SERVE-JSON "))
    f = json.loads(line.removeprefix("SERVE-JSON "))
    return Run(rows, f["requests"], f["duration_us"] / 1e6, f["p50_us"] / 1e6, f["p99_us"] / 1e6,
               f["status_errors"] + f["socket_errors"],
               now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime, served)
