"""`TaskPanel`: the task queue, one row per task (id, type, status, duration, progress bar, and a
Cancel button while it may still run), filtered by status and type. It refreshes itself while
displayed and stops when closed; failures are shown in the panel, never raised."""

from __future__ import annotations

import threading
import time
from typing import Any

import ipywidgets as w

from ..client import GswarmClient
from ..core.errors import GswarmError
from .panel import LivePanel

ACTIVE = ("pending", "running")
STATUSES = ("pending", "running", "completed", "failed", "cancelled")
ANY = ""  # the filters' "no filter" value
_STYLE = {"pending": "info", "running": "", "completed": "success", "failed": "danger",
          "cancelled": "warning"}


def format_seconds(seconds: float) -> str:
    """`0.42` -> `0.4 s`, `75` -> `1 min 15 s`, `7300` -> `2 h 1 min`."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def duration(task: dict[str, Any], now: float | None = None) -> str:
    """How long the task ran (still running: so far), or how long it has waited to start."""
    now = time.time() if now is None else now
    started, ended = task.get("started_at"), task.get("completed_at")
    if started is not None:
        return format_seconds(max(0.0, (ended or now) - started))
    created = task.get("created_at")
    if task["status"] == "pending" and created is not None:
        return "waiting " + format_seconds(max(0.0, now - created))
    return "-"


COLUMNS = (("task", "19em"), ("type", "7.5em"), ("status", "7em"), ("duration", "7em"),
           ("progress", "10em"))


def column_titles() -> w.HBox:
    """The titles above the rows."""
    return w.HBox([w.HTML(f"<span style='color:#555'>{title}</span>", layout=w.Layout(width=width))
                   for title, width in COLUMNS])


class TaskRow(w.HBox):
    """One task: id, type, status, duration, progress bar and (while it may still run) Cancel."""

    def __init__(self, panel: TaskPanel, task_id: str) -> None:
        self.task_id = task_id
        widths = [width for _, width in COLUMNS]
        self.label = w.Label(task_id, layout=w.Layout(width=widths[0]))
        self.kind = w.Label(layout=w.Layout(width=widths[1]))
        self.status = w.Label(layout=w.Layout(width=widths[2]))
        self.took = w.Label(layout=w.Layout(width=widths[3]))
        self.bar = w.IntProgress(min=0, max=100, layout=w.Layout(width=widths[4]))
        self.cancel = w.Button(description="Cancel", button_style="warning",
                               tooltip=f"cancel {task_id}", layout=w.Layout(width="6em"))
        self.cancel.on_click(lambda _: panel.cancel(task_id))
        super().__init__([self.label, self.kind, self.status, self.took, self.bar, self.cancel])
        self.add_class("gswarm-task-row")

    def show(self, task: dict[str, Any], now: float | None = None) -> None:
        self.kind.value = task["task_type"]
        self.status.value = task["status"]
        self.took.value = duration(task, now)
        self.bar.value = int(task["progress"])
        self.bar.bar_style = _STYLE.get(task["status"], "")
        active = task["status"] in ACTIVE
        self.cancel.disabled = not active
        self.cancel.layout.visibility = "visible" if active else "hidden"

    def close(self) -> None:
        for child in self.children:
            child.close()
        super().close()


class TaskPanel(LivePanel):
    css_class = "gswarm-task-panel"

    def __init__(self, client: GswarmClient | None = None, interval: float = 2.0,
                 limit: int = 20, status: str = ANY, task_type: str = ANY) -> None:
        self.client = client or GswarmClient()
        self.limit = limit
        self.header = w.HTML()
        self.status_filter = w.Dropdown(
            description="status", options=[("any", ANY), *((s, s) for s in STATUSES)],
            value=status, layout=w.Layout(width="14em"))
        self.type_filter = w.Dropdown(description="type", options=[("any", ANY)],
                                      layout=w.Layout(width="18em"))
        self.types: set[str] = set()
        self._updating = False  # the panel itself is changing the dropdowns
        self._set_types({task_type} - {ANY}, task_type)
        self.status_filter.observe(self._on_filter, names="value")
        self.type_filter.observe(self._on_filter, names="value")
        self.body = w.VBox()
        self.rows: dict[str, TaskRow] = {}
        self._lock = threading.RLock()
        filters = w.HBox([self.status_filter, self.type_filter])
        super().__init__([self.header, filters, column_titles(), self.body], interval)
        self.refresh()

    def refresh(self) -> None:
        """Read the queue once (as filtered) and redraw."""
        with self._lock:
            try:
                counts = self.client.tasks.queue()
                tasks = self.client.tasks.list(status=self.status_filter.value or None,
                                               type=self.type_filter.value or None,
                                               limit=self.limit)
            except GswarmError as exc:
                self.refresh_failed(exc)
                return
            self.refreshed()
            self.header.value = "<b>gswarm queue</b> · " + " · ".join(
                f"{counts[s]} {s}" for s in STATUSES)
            self._set_types({t["task_type"] for t in tasks}, self.type_filter.value)
            now, rows = time.time(), {}
            for task in tasks:
                row = self.rows.get(task["task_id"]) or TaskRow(self, task["task_id"])
                row.show(task, now)
                rows[task["task_id"]] = row
            for gone in set(self.rows) - set(rows):
                self.rows[gone].close()
            self.rows = rows
            self.body.children = list(rows.values()) or [w.HTML("<i>no task</i>")]

    def _set_types(self, seen: set[str], keep: str) -> None:
        """The type filter offers every type seen so far."""
        if seen <= self.types and keep in self.type_filter.options:
            return
        self.types |= seen
        options = [("any", ANY), *((t, t) for t in sorted(self.types))]
        self._updating = True
        try:
            self.type_filter.options = options
            self.type_filter.value = keep if keep in self.types else ANY
        finally:
            self._updating = False

    def _on_filter(self, change: dict[str, Any]) -> None:
        if self._updating:
            return
        self.clear_error()  # changing a filter is the user's next action
        self.refresh()

    def filter(self, status: str = ANY, task_type: str = ANY) -> None:
        """Show only tasks of `status` and `task_type` (as the dropdowns do; ANY for all)."""
        self._set_types({task_type} - {ANY}, self.type_filter.value)
        self._updating = True
        try:
            self.status_filter.value = status
            self.type_filter.value = task_type
        finally:
            self._updating = False
        self.clear_error()
        self.refresh()

    def cancel(self, task_id: str) -> None:
        """Cancel the task (as its Cancel button does); a refusal is shown, not raised."""
        row = self.rows.get(task_id)
        if row is not None:
            row.cancel.disabled = True
        if self.act(lambda: self.client.tasks.cancel(task_id)) is not None:
            self.refresh()

    @property
    def statuses(self) -> dict[str, str]:
        """Each shown task's status, as drawn."""
        return {task_id: row.status.value for task_id, row in self.rows.items()}

    def owned(self) -> list[w.Widget]:
        return list(self.rows.values())
