"""Results, their file and their table."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results.json"
TABLE = ROOT.parent / "BENCHMARKS.md"


@dataclass
class Result:
    name: str
    value: float
    unit: str
    baseline: str
    baseline_value: float
    ratio: float
    goal: str
    note: str = ""

    @property
    def met(self) -> bool:
        op, target = self.goal.split()
        return self.ratio >= float(target) if op == ">=" else self.ratio <= float(target)


def rate(fn: Callable[[], None], n: int) -> float:
    """Calls per second of `fn` over `n` calls."""
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def alternate(a: Callable[[], float], b: Callable[[], float], rounds: int) -> tuple[float, float]:
    """Median of each over interleaved rounds, so drift in the machine hits both alike."""
    xs, ys = [], []
    for _ in range(rounds):
        xs.append(a())
        ys.append(b())
    return statistics.median(xs), statistics.median(ys)


def write(fresh: list[Result]) -> None:
    """Merge `fresh` into the results file by name (a partial run keeps the other figures)."""
    kept: dict[str, Result] = {}
    if RESULTS.exists():
        for record in json.loads(RESULTS.read_text()):
            kept[record["name"]] = Result(**record)
    kept.update({r.name: r for r in fresh})
    results = sorted(kept.values(), key=lambda r: r.name)
    RESULTS.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench`. Every figure is a ratio against a baseline measured in the same",
        f"run, on this machine: {platform.machine()}, {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}.",
        "",
        "| name | value | baseline | baseline value | ratio | goal | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.value:,.1f} {r.unit} | {r.baseline} | {r.baseline_value:,.1f} {r.unit} "
            f"| {r.ratio:.3f} | {r.goal} | {'yes' if r.met else 'no'} |"
        )
    notes = [f"- **{r.name}**: {r.note}" for r in results if r.note]
    if notes:
        lines += ["", "## Notes", "", *notes]
    TABLE.write_text("\n".join(lines) + "\n")
