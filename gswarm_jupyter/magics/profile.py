"""`%%gswarm profile NAME` (profile one cell) and `%gswarm profile start|stop|show|list`.

A profiled cell without `--interval` is sampled often enough for its length: about
`TARGET_SAMPLES` samples over the length of the session's previous run of the same name (a first
run: every `FIRST_RUN_MS`), never faster than the sampler's minimum period. A run with fewer than
`MIN_SAMPLES` samples per node is reported as too short to chart: its table, and no plot."""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.error import UsageError

from ..core.units import format_bytes, format_ratio
from .commands import OUT, arg, command
from .display import Column, Table

USAGE = (
    "usage: %%gswarm profile NAME [--interval MS] [--nodes NODE ...] [--metrics M ...] [-o VAR]\n"
    "       %gswarm profile start NAME [--interval MS] [--nodes NODE ...] [--metrics M ...]\n"
    "       %gswarm profile stop|show NAME [-o VAR]\n"
    "       %gswarm profile list [-o VAR]"
)
LINE_ACTIONS = ("start", "stop", "show", "list")
MIN_INTERVAL_MS = 10  # the sampler's minimum period (the API refuses less)
FIRST_RUN_MS = 25  # a cell not seen before: 20 samples in half a second
MAX_AUTO_MS = 1000  # the samplers' idle period: a long cell needs no coarser one
TARGET_SAMPLES = 40  # aimed at, so a run somewhat shorter than the last still has enough
MIN_SAMPLES = 20  # per node: fewer do not make a chart


def auto_interval(expected_s: float | None) -> int:
    """The sampling period in ms for a cell expected to run `expected_s` seconds (None: unknown)."""
    if expected_s is None or expected_s <= 0:
        return FIRST_RUN_MS
    ms = int(expected_s * 1000 / TARGET_SAMPLES)
    return max(MIN_INTERVAL_MS, min(MAX_AUTO_MS, ms))


def samples_per_node(summary: dict[str, Any]) -> int:
    """The fewest samples any node took (0 when none did)."""
    counts = [max((int(stats.get("count", 0)) for metrics in devices.values()
                   for stats in metrics.values()), default=0)
              for devices in summary.values()]
    return min(counts, default=0)


def too_short(session: dict[str, Any]) -> str | None:
    """Why the session's run is too short to chart, or None when it is long enough."""
    samples = samples_per_node(session.get("summary") or {})
    if samples >= MIN_SAMPLES:
        return None
    period = session["sampling_frequency_ms"]
    hint = ("even at the sampler's minimum period" if period <= MIN_INTERVAL_MS
            else f"a shorter --interval (at least {MIN_INTERVAL_MS} ms) or a longer cell charts it")
    return (f"too short to chart: {samples} samples per node over {session['duration_s']:.2f} s "
            f"every {period} ms (a chart needs {MIN_SAMPLES}); {hint}")


def format_value(metric: str, value: float | None) -> str:
    """A reading in the unit its name carries: `0.42` ratio -> `42%`, bytes/s -> `1.5 MiB/s`."""
    if value is None:
        return "-"
    if metric.endswith("_bytes_per_s"):
        return format_bytes(value) + "/s"
    if metric.endswith("_bytes"):
        return format_bytes(value)
    if metric.endswith("_ratio"):
        return format_ratio(value)
    if metric.endswith("_celsius"):
        return f"{value:.1f} °C"
    if metric.endswith("_watts"):
        return f"{value:.1f} W"
    return f"{value:.3g}"


def summary_table(summary: dict[str, Any], title: str = "") -> Table:
    """One row per node, device and metric: mean, max and p95 in the metric's unit."""
    rows = [
        {"node": node, "device": device, "metric": metric,
         **{k: format_value(metric, stats.get(k)) for k in ("mean", "max", "p95")}}
        for node, devices in sorted(summary.items())
        for device, metrics in sorted(devices.items())
        for metric, stats in sorted(metrics.items())
    ]
    columns = [Column(k, k) for k in ("node", "device", "metric", "mean", "max", "p95")]
    return Table(rows, columns, title=title)


class Report:
    """A session's summary table and its plot (or why there is none); a notebook shows both."""

    def __init__(self, table: Table, plot: Any = None, notice: str | None = None) -> None:
        self.table = table
        self.plot = plot  # an IPython.display.Image, or None
        self.notice = notice

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if self.notice:
            print(self.notice)
        display(self.table)
        if self.plot is not None:
            display(self.plot)

    def __repr__(self) -> str:
        return "\n".join(filter(None, [self.notice, repr(self.table)]))


def _title(session: dict[str, Any]) -> str:
    tags = session.get("tags") or {}
    cell = f", cell [{tags['execution_count']}]" if "execution_count" in tags else ""
    return (f"{session['name']} ({session['status']}): {session['frames_collected']} frames over "
            f"{session['duration_s']:.1f} s every {session['sampling_frequency_ms']} ms{cell}")


def report(client: Any, session: dict[str, Any], metrics: list[str] | None = None,
           note: str = "") -> Report:
    """The summary table of a stopped session (its record with `summary`) and its plot, unless
    the run is too short to chart."""
    from IPython.display import Image

    table = summary_table(session["summary"], _title(session) + note)
    notice = too_short(session)
    if notice is not None:
        return Report(table, None, notice)
    png = client.profiler.plot_png(session["name"], metrics)
    return Report(table, Image(data=png, format="png"))


def _usage(message: str) -> UsageError:
    return UsageError(f"{USAGE}\n%gswarm profile: {message}")


def cell_number(shell: Any) -> int:
    """The In[N] of the cell running now. IPython 9 bumps `execution_count` as a cell starts,
    so the running cell's own result is asked first."""
    running = getattr(shell.displayhook, "exec_result", None)
    if running is not None and running.execution_count is not None:
        return int(running.execution_count)
    return int(shell.execution_count)


def last_duration(client: Any, name: str) -> float | None:
    """How long the last finished run of session `name` lasted (None: never run)."""
    runs = [s for s in client.profiler.sessions() if s["name"] == name and s["status"] != "running"]
    return float(runs[-1]["duration_s"]) if runs else None


def profile_cell(magics: Any, args: argparse.Namespace, cell: str) -> Report:
    """Record a session while the cell runs; stop it even if the cell raised; show its report."""
    if args.name is not None:
        raise _usage(f"a cell takes one NAME, got {args.what!r} {args.name!r}")
    interval = args.interval
    if interval is None:
        interval = auto_interval(last_duration(magics.client, args.what))
    magics.client.profiler.start(args.what, interval, args.nodes, args.metrics,
                                 {"execution_count": cell_number(magics.shell)})
    result = None
    hook = magics.shell.displayhook
    outer = getattr(hook, "exec_result", None)  # the nested run_cell resets it; keep ours
    try:
        result = magics.shell.run_cell(cell)
    finally:
        hook.exec_result = outer
        session = magics.client.profiler.stop(args.what)
    magics.keep(args, session)
    error = None if result is None else (result.error_before_exec or result.error_in_exec)
    note = f" (the cell raised {type(error).__name__})" if error is not None else ""
    return report(magics.client, session, args.metrics, note)


def sessions_table(sessions: list[dict[str, Any]]) -> Table:
    rows = [
        {"name": s["name"], "status": s["status"], "every": f"{s['sampling_frequency_ms']} ms",
         "nodes": ",".join(s["nodes"]) if s.get("nodes") else "all",
         "frames": s["frames_collected"], "duration": f"{s['duration_s']:.1f} s",
         "started": s["start_time"],
         "tags": ",".join(f"{k}={v}" for k, v in (s.get("tags") or {}).items()) or None}
        for s in sessions
    ]
    keys = ("name", "status", "every", "nodes", "frames", "duration", "started", "tags")
    return Table(rows, [Column(k, k) for k in keys], title=f"{len(rows)} profiling sessions")


@command(
    "profile", "Profile a cell (%%gswarm profile NAME) or drive sessions: start|stop|show|list",
    arg("what", metavar="ACTION|NAME",
        help="start, stop, show or list; in a cell: the session name"),
    arg("name", nargs="?", metavar="NAME", help="the session (start, stop, show)"),
    arg("--interval", type=int, default=None, metavar="MS",
        help="sampling period in ms (>= 10); a cell's default fits its last run's length"),
    arg("--nodes", nargs="+", default=None, metavar="NODE", help="only these nodes"),
    arg("--metrics", nargs="+", default=None, metavar="M", help="only these metrics"),
    OUT,
    cell=True,
)
def profile(magics: Any, args: argparse.Namespace, cell: str | None) -> Any:
    if cell is not None:
        return profile_cell(magics, args, cell)
    if args.what not in LINE_ACTIONS:
        raise _usage(f"unknown action {args.what!r}; to profile a cell use %%gswarm profile NAME")
    if args.what == "list":
        if args.name is not None:
            raise _usage("list takes no NAME")
        sessions = magics.client.profiler.sessions()
        magics.keep(args, sessions)
        return sessions_table(sessions)
    if args.name is None:
        raise _usage(f"{args.what} needs a NAME")
    profiler = magics.client.profiler
    if args.what == "start":
        record = profiler.start(args.name, args.interval, args.nodes, args.metrics)
        magics.keep(args, record)
        where = ",".join(record["nodes"]) if record.get("nodes") else "every node"
        print(f"profiling {record['name']} every {record['sampling_frequency_ms']} ms on {where}")
        return None
    if args.what == "stop":
        session = profiler.stop(args.name)
        magics.keep(args, session)
        return summary_table(session["summary"], _title(session))
    session = profiler.session(args.name)  # show: a running session's report so far
    magics.keep(args, session)
    return report(magics.client, session, args.metrics)
