"""`TaskPanel`: the task queue, one row per task with a progress bar and a Cancel button for tasks
still pending or running; it refreshes itself while displayed and stops when closed."""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as w

from ..client import GswarmClient
from ..core.errors import GswarmError
from .panel import LivePanel

ACTIVE = ("pending", "running")
_STYLE = {"pending": "info", "running": "", "completed": "success", "failed": "danger",
          "cancelled": "warning"}


class TaskRow(w.HBox):
    """One task: id, type, status, progress bar and (while it may still run) a Cancel button."""

    def __init__(self, panel: TaskPanel, task_id: str) -> None:
        self.task_id = task_id
        self.label = w.Label(task_id, layout=w.Layout(width="22em"))
        self.kind = w.Label(layout=w.Layout(width="7em"))
        self.status = w.Label(layout=w.Layout(width="7em"))
        self.bar = w.IntProgress(min=0, max=100)
        self.cancel = w.Button(description="Cancel", button_style="warning",
                               tooltip=f"cancel {task_id}", layout=w.Layout(width="6em"))
        self.cancel.on_click(lambda _: panel.cancel(task_id))
        super().__init__([self.label, self.kind, self.status, self.bar, self.cancel])

    def show(self, task: dict[str, Any]) -> None:
        self.kind.value = task["task_type"]
        self.status.value = task["status"]
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
    def __init__(self, client: GswarmClient | None = None, interval: float = 2.0,
                 limit: int = 20) -> None:
        self.client = client or GswarmClient()
        self.limit = limit
        self.header = w.HTML()
        self.body = w.VBox()
        self.error = w.HTML()
        self.rows: dict[str, TaskRow] = {}
        self._lock = threading.Lock()
        super().__init__([self.header, self.body, self.error], interval)
        self.refresh()

    def refresh(self) -> None:
        """Read the queue once and redraw."""
        with self._lock:
            try:
                counts = self.client.tasks.queue()
                tasks = self.client.tasks.list(limit=self.limit)
            except GswarmError as exc:
                self.show_error(exc)
                return
            self.error.value = ""
            self.header.value = "<b>gswarm queue</b> · " + " · ".join(
                f"{counts[s]} {s}" for s in ("pending", "running", "completed", "failed", "cancelled")
            )
            rows = {}
            for task in tasks:
                row = self.rows.get(task["task_id"]) or TaskRow(self, task["task_id"])
                row.show(task)
                rows[task["task_id"]] = row
            for gone in set(self.rows) - set(rows):
                self.rows[gone].close()
            self.rows = rows
            self.body.children = list(rows.values())

    def cancel(self, task_id: str) -> None:
        """Cancel the task (as its Cancel button does); a refusal is shown, not raised."""
        row = self.rows.get(task_id)
        if row is not None:
            row.cancel.disabled = True
        try:
            self.client.tasks.cancel(task_id)
        except GswarmError as exc:
            self.show_error(exc)
            return
        self.refresh()


    @property
    def statuses(self) -> dict[str, str]:
        """Each shown task's status, as drawn."""
        return {task_id: row.status.value for task_id, row in self.rows.items()}

    def owned(self) -> list[w.Widget]:
        return list(self.rows.values())
