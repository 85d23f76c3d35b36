"""`%gswarm tasks` (the queue as a table) and `%gswarm wait TASK_ID` (a progress bar until it ends)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..core.tasks import STATUSES
from .commands import OUT, arg, command
from .display import Column, Table
from .progress import wait_with_bar


def format_time(epoch: float | None) -> str:
    """Epoch seconds as `2026-01-01 12:00:00` (UTC)."""
    return "-" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def outcome(task: dict[str, Any]) -> str:
    """One line saying how a finished task ended (its error code and message if it failed)."""
    line = f"task {task['task_id']} {task['status']}"
    if task.get("started_at") and task.get("completed_at"):
        line += f" in {task['completed_at'] - task['started_at']:.1f} s"
    error = task.get("error")
    if error:
        line += f": {error.get('code')}: {error.get('message')}"
    return line


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


@command(
    "tasks", "The task queue, newest first",
    arg("--status", choices=STATUSES, default=None, help="only tasks in this status"),
    arg("--type", default=None, help="only tasks of this type (e.g. transfer)"),
    arg("--limit", type=int, default=50, help="at most this many tasks (default 50)"),
    OUT,
)
def tasks(magics: Any, args: argparse.Namespace, cell: str | None) -> Table:
    found = magics.client.tasks.list(status=args.status, type=args.type, limit=args.limit)
    magics.keep(args, found)
    rows = [
        {
            "id": t["task_id"],
            "type": t["task_type"],
            "priority": t["priority"],
            "status": t["status"],
            "progress": f"{t['progress']}%",
            "created": format_time(t["created_at"]),
        }
        for t in found
    ]
    columns = [Column(k, k) for k in ("id", "type", "priority", "status", "progress", "created")]
    return Table(rows, columns, title=f"{len(rows)} tasks")


@command(
    "wait", "Show a task's progress until it ends",
    arg("task_id", metavar="TASK_ID"),
    arg("--timeout", type=_positive, default=None, metavar="S", help="give up after S seconds"),
    arg("--poll", type=_positive, default=0.2, metavar="S", help="ask every S seconds"),
    OUT,
)
def wait(magics: Any, args: argparse.Namespace, cell: str | None) -> None:
    task = wait_with_bar(magics.client, args.task_id, timeout=args.timeout, poll=args.poll)
    magics.keep(args, task)
    print(outcome(task))
