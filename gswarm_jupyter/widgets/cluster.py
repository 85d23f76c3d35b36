"""`ClusterPanel`: the nodes, their status, and a memory bar per device; it refreshes itself while
displayed and stops when closed."""

from __future__ import annotations

import ipywidgets as w

from ..client import GswarmClient
from ..core.errors import GswarmError
from ..core.units import format_bytes
from .panel import LivePanel

_DOT = {"online": "#2e9e44", "offline": "#c0392b"}


class ClusterPanel(LivePanel):
    def __init__(self, client: GswarmClient | None = None, interval: float = 2.0) -> None:
        self.client = client or GswarmClient()
        self.header = w.HTML()
        self.body = w.VBox()
        self.error = w.HTML()
        self.bars: dict[tuple[str, str], w.FloatProgress] = {}
        super().__init__([self.header, self.body, self.error], interval)
        self.refresh()

    def refresh(self) -> None:
        """Read the cluster once and redraw."""
        try:
            health = self.client.health()
            metrics = self.client.metrics()
        except GswarmError as exc:
            self.show_error(exc)
            return
        self.error.value = ""
        self.header.value = (
            f"<b>gswarm</b> {health['status']} · {health['nodes_online']} of "
            f"{health['nodes_total']} nodes online"
        )
        rows, bars = [], {}
        for name, node in metrics["nodes"].items():
            color = _DOT.get(node["status"], "#888")
            title = w.HTML(f"<span style='color:{color}'>●</span> <b>{name}</b> {node['status']}")
            lines = [title]
            for device, usage in node["devices"].items():
                bar = self.bars.get((name, device)) or w.FloatProgress(min=0.0, max=1.0)
                bar.value = usage.get("memory_utilization") or 0.0
                bar.description = device
                label = w.Label(f"{format_bytes(usage.get('used'))} / {format_bytes(usage.get('total'))}")
                bars[(name, device)] = bar
                lines.append(w.HBox([bar, label]))
            rows.append(w.VBox(lines))
        self.bars = bars
        self.body.children = rows

    @property
    def node_names(self) -> list[str]:
        return sorted({node for node, _ in self.bars})
