"""`ClusterPanel`: a card per node with its status, sparklines of its CPU, memory and each GPU
(from the profiler's latest frames), a bar per storage device, and the tasks and services running
on it; a link to the embedded Dask dashboard (through the server, its authentication) when the
server has one. It refreshes itself while displayed and stops when closed; failures are shown in
the panel, never raised."""

from __future__ import annotations

import html
import threading
from typing import Any
from urllib.parse import urljoin

import ipywidgets as w

from ..client import GswarmClient
from ..core.errors import GswarmError
from ..core.units import format_bytes
from .charts import PALETTE, Sparkline
from .panel import LivePanel

_DOT = {"online": "#2e9e44", "offline": "#c0392b"}
GIB = float(1 << 30)


def task_nodes(task: dict[str, Any]) -> set[str]:
    """The nodes a task works on: those of the devices in its resources."""
    devices = (task.get("resources") or {}).get("devices") or []
    return {d.partition(":")[0] for d in devices if ":" in d}


def gpu_reading(gpu: dict[str, Any]) -> tuple[float | None, str]:
    """A GPU's utilisation in % (None when NVML does not say) and its label."""
    util = gpu.get("utilization_ratio")
    used, total = gpu.get("memory_used_bytes"), gpu.get("memory_total_bytes")
    parts = [f"{100 * util:.0f}%" if util is not None else "n/a"]
    if used is not None and total:
        parts.append(f"{used / GIB:.1f}/{total / GIB:.1f} GiB")
    return (None if util is None else 100.0 * util), " · ".join(parts)


def dashboard_link(server_url: str, health: dict[str, Any]) -> str:
    """The header's "Dask dashboard" link (HTML), or "" when the server has no dashboard."""
    path = (health.get("scheduler") or {}).get("dashboard_path")
    if not path:
        return ""
    href = html.escape(urljoin(server_url.rstrip("/") + "/", path), quote=True)
    return f' · <a href="{href}" target="_blank" rel="noopener">Dask dashboard</a>'


class NodeCard(w.VBox):
    """One node: title, sparklines, storage bars, running tasks and services."""

    def __init__(self, name: str, color: str) -> None:
        self.name = name
        self.color = color
        self.title = w.HTML()
        self.cpu = Sparkline("CPU", color=color)
        self.memory = Sparkline("mem", color=color)
        self.gpus: dict[str, Sparkline] = {}
        self.sparks = w.VBox([self.cpu, self.memory])
        self.storage = w.VBox()
        self.bars: dict[str, w.FloatProgress] = {}
        self.work = w.HTML()
        super().__init__([self.title, self.sparks, self.storage, self.work],
                         layout=w.Layout(border="1px solid #ddd", padding="4px 8px",
                                         min_width="380px"))
        self.add_class("gswarm-node-card")

    def show_node(self, node: dict[str, Any]) -> None:
        color = _DOT.get(node["status"], "#888")
        cpu = node.get("cpu") or {}
        cores = f" · {cpu['cores']} cores" if cpu.get("cores") else ""
        self.title.value = (f"<span style='color:{color}'>●</span> <b>{html.escape(self.name)}</b>"
                            f" {html.escape(node['status'])}{cores}")
        rows = []
        for device, usage in node["devices"].items():
            bar = self.bars.get(device) or w.FloatProgress(min=0.0, max=1.0, description=device,
                                                           layout=w.Layout(width="16em"))
            bar.value = usage.get("memory_utilization") or 0.0
            self.bars[device] = bar
            label = w.Label(f"{format_bytes(usage.get('used'))} / "
                            f"{format_bytes(usage.get('total'))}")
            rows.append(w.HBox([bar, label]))
        for gone in set(self.bars) - set(node["devices"]):
            self.bars.pop(gone).close()
        self.storage.children = rows

    def show_frame(self, frame: dict[str, Any]) -> None:
        t = float(frame["timestamp_unix_s"])
        host = frame.get("host") or {}
        cpu = host.get("cpu_utilization_ratio")
        if cpu is not None:
            self.cpu.add(t, 100.0 * cpu, f"{100 * cpu:.0f}%")
        used, total = host.get("memory_used_bytes"), host.get("memory_total_bytes")
        if used is not None and total:
            self.memory.add(t, 100.0 * used / total,
                            f"{used / GIB:.1f} / {total / GIB:.1f} GiB")
        for gpu in frame.get("gpus") or ():
            device = gpu.get("device", "gpu")
            spark = self.gpus.get(device)
            if spark is None:
                spark = self.gpus[device] = Sparkline(device, color=self.color)
                self.sparks.children = [self.cpu, self.memory, *self.gpus.values()]
            value, label = gpu_reading(gpu)
            if value is not None:
                spark.add(t, value, label)
            else:
                spark.reading.value = label

    def show_work(self, tasks: list[dict[str, Any]], services: list[dict[str, Any]]) -> None:
        lines = []
        for task in tasks:
            lines.append(f"<div>⚙ {html.escape(task['task_id'])} · {html.escape(task['status'])}"
                         f" {int(task['progress'])}%</div>")
        for svc in services:
            lines.append(f"<div>▶ {html.escape(svc['model_name'])} on "
                         f"{html.escape(str(svc.get('device')))} · "
                         f"{html.escape(str(svc.get('framework') or ''))} · "
                         f"{html.escape(svc['status'])}</div>")
        summary = (f"<div style='color:#555'>{len(tasks)} tasks running · "
                   f"{len(services)} services</div>")
        self.work.value = summary + "".join(lines)

    def close(self) -> None:
        for widget in (self.cpu, self.memory, *self.gpus.values(), *self.bars.values()):
            widget.close()
        super().close()


class ClusterPanel(LivePanel):
    css_class = "gswarm-cluster-panel"

    def __init__(self, client: GswarmClient | None = None, interval: float = 2.0) -> None:
        self.client = client or GswarmClient()
        self.header = w.HTML()
        self.body = w.GridBox(layout=w.Layout(
            grid_template_columns="repeat(auto-fill, minmax(380px, 1fr))", grid_gap="6px",
            width="100%"))
        self.cards: dict[str, NodeCard] = {}
        self._lock = threading.Lock()
        super().__init__([self.header, self.body], interval)
        self.refresh()

    def refresh(self) -> None:
        """Read the cluster once and redraw."""
        with self._lock:
            try:
                health = self.client.health()
                metrics = self.client.metrics()
                frames = self.client.profiler.latest()
                tasks = self.client.tasks.list(status="running", limit=100)
                services = self.client.services.list()
            except GswarmError as exc:
                self.refresh_failed(exc)
                return
            self.refreshed()
            nodes = metrics["nodes"]
            online = sum(1 for n in nodes.values() if n["status"] == "online")
            self.header.value = (f"<b>gswarm</b> · {online} of {len(nodes)} nodes online · "
                                 f"{len(tasks)} tasks running · {len(services)} services"
                                 + dashboard_link(self.client.base_url, health))
            for name in sorted(nodes):
                card = self.cards.get(name)
                if card is None:
                    color = PALETTE[len(self.cards) % len(PALETTE)]
                    card = self.cards[name] = NodeCard(name, color)
                card.show_node(nodes[name])
                card.show_work([t for t in tasks if name in task_nodes(t)],
                               [s for s in services if s.get("node") == name])
            for frame in frames:
                card = self.cards.get(frame["node"])
                if card is not None:
                    card.show_frame(frame)
            for gone in set(self.cards) - set(nodes):
                self.cards.pop(gone).close()
            children = [self.cards[n] for n in sorted(self.cards)]
            if list(self.body.children) != children:
                self.body.children = children

    @property
    def node_names(self) -> list[str]:
        return sorted(self.cards)

    @property
    def bars(self) -> dict[tuple[str, str], w.FloatProgress]:
        """Each node's storage bars: (node, device) -> bar."""
        return {(n, d): bar for n, card in self.cards.items() for d, bar in card.bars.items()}

    def owned(self) -> list[w.Widget]:
        return list(self.cards.values())
