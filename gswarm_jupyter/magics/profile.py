"""`%%gswarm profile NAME` (profile one cell) and `%gswarm profile start|stop|show|list`."""

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
    """A session's summary table and its plot; a notebook shows both."""

    def __init__(self, table: Table, plot: Any = None) -> None:
        self.table = table
        self.plot = plot  # an IPython.display.Image, or None

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.table)
        if self.plot is not None:
            display(self.plot)

    def __repr__(self) -> str:
        return repr(self.table)


def _title(session: dict[str, Any]) -> str:
    tags = session.get("tags") or {}
    cell = f", cell [{tags['execution_count']}]" if "execution_count" in tags else ""
    return (f"{session['name']} ({session['status']}): {session['frames_collected']} frames over "
            f"{session['duration_s']:.1f} s every {session['sampling_frequency_ms']} ms{cell}")


def report(client: Any, session: dict[str, Any], metrics: list[str] | None = None,
           note: str = "") -> Report:
    """The summary table of a stopped session (its record with `summary`) and its plot."""
    from IPython.display import Image

    png = client.profiler.plot_png(session["name"], metrics)
    table = summary_table(session["summary"], _title(session) + note)
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


def profile_cell(magics: Any, args: argparse.Namespace, cell: str) -> Report:
    """Record a session while the cell runs; stop it even if the cell raised; show its report."""
    if args.name is not None:
        raise _usage(f"a cell takes one NAME, got {args.what!r} {args.name!r}")
    magics.client.profiler.start(args.what, args.interval, args.nodes, args.metrics,
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
    arg("--interval", type=int, default=None, metavar="MS", help="sampling period in ms (>= 10)"),
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
