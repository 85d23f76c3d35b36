"""`ModelPanel`: the tier map (nodes as columns; disk, dram, gpuN, vgpuN as rows; each model a chip
where it has a copy, coloured by the copy's status), move/copy/delete actions picked from dropdowns
(the model's copies as sources, the cluster's real devices as targets), and a progress bar per
running model task. Resource allocations are drawn as reserved bands in their device's cell, and a
virtual GPU's cell shows its quota used and free (from the nodes' `capabilities.vgpus`). It
polls the registry with a `Refresher` while displayed and stops when closed;
errors are shown in the panel, never raised."""

from __future__ import annotations

import html
import re
import threading
from typing import Any

import ipywidgets as w

from ..client import GswarmClient
from ..core.errors import GswarmError
from ..core.units import format_bytes
from .panel import LivePanel

_CHIP = {"ready": "#2e9e44", "copying": "#2f7fc1", "failed": "#c0392b", "lost": "#888"}
_ACTIVE = ("pending", "running")
Cell = tuple[str, str]  # (device, node)
WHOLE_MODEL = ("every copy (the model)", "")  # the source option Delete reads as the whole model


def device_order(device: str) -> tuple[int, int, str]:
    """disk, dram, gpu0, gpu1, ..., vgpu0, ...; anything else after."""
    match = re.fullmatch(r"(disk|dram|gpu|vgpu)(\d*)", device)
    if match is None:
        return (4, 0, device)
    rank = ("disk", "dram", "gpu", "vgpu").index(match.group(1))
    return (rank, int(match.group(2) or 0), device)


def qualified_order(device: str) -> tuple[str, tuple[int, int, str]]:
    """`node1:disk` < `node1:dram` < `node1:gpu0` < `node2:disk`."""
    node, _, name = device.rpartition(":")
    return (node, device_order(name))


def _offer(dropdown: w.Dropdown, options: list[tuple[str, str]]) -> None:
    """New options for `dropdown`, keeping its value when it is still offered (never keeping the
    whole-model choice: a source defaults to a real copy)."""
    if list(dropdown.options) == options:
        return
    keep = dropdown.value
    dropdown.options = options
    values = [v for _, v in options]
    kept = keep in values and keep != WHOLE_MODEL[1]
    dropdown.value = keep if kept else (values[0] if values else None)


def chip(name: str, status: str) -> str:
    """One model's badge: its name, and its status unless ready."""
    color = _CHIP.get(status, "#888")
    label = html.escape(name) + ("" if status == "ready" else f" · {html.escape(status)}")
    return (f"<span class='gswarm-chip' title='{html.escape(name)}: {html.escape(status)}' "
            "style='display:inline-block;"
            f"margin:1px;padding:0 6px;border-radius:8px;color:white;background:{color};"
            f"font-size:90%'>{label}</span>")


def band(alloc: dict[str, Any]) -> str:
    """A reservation drawn across its cell: its size, how much its owner fills, when it ends."""
    size, used = alloc["memory_size"], alloc.get("used_bytes") or 0
    filled = min(100, round(100 * used / size)) if size else 0
    title = html.escape(f"{alloc['allocation_id']} for {alloc.get('owner', alloc['user_id'])} "
                        f"until {alloc['end_time']}", quote=True)
    return (f"<div class='gswarm-band' title='{title}' style='margin:2px 0;padding:1px 4px;"
            "border:1px dashed #8e44ad;color:#5b2c6f;font-size:90%;background:linear-gradient("
            f"to right,#d7bde2 {filled}%,#f4ecf7 {filled}%)'>reserved "
            f"{html.escape(format_bytes(size))} · {html.escape(alloc['user_id'])}</div>")


class TaskBar(w.HBox):
    """A running model task: its description and a progress bar."""

    def __init__(self, task_id: str) -> None:
        self.label = w.Label(task_id, layout=w.Layout(width="24em"))
        self.bar = w.IntProgress(min=0, max=100)
        self.status = w.Label()
        super().__init__([self.label, self.bar, self.status])

    def show(self, task: dict[str, Any]) -> None:
        self.bar.value = int(task["progress"])
        self.status.value = f"{task['status']} {task['progress']:.0f}%"


def quota(vgpu: dict[str, Any]) -> str:
    """A virtual GPU's quota line: a bar filled by the bytes in use, then used and free."""
    size, used = vgpu["memory_size"], vgpu.get("memory_used") or 0
    free = vgpu.get("memory_available", max(0, size - used))
    fill = min(100, round(100 * used / size)) if size else 0
    title = html.escape(f"{vgpu['virtual_gpu_id']}: {vgpu.get('compute_units')} compute units, "
                        f"backing {vgpu.get('backing')}", quote=True)
    return (f"<div class='gswarm-quota' title='{title}' style='margin:2px 0;font-size:85%'>"
            f"<div style='height:4px;background:linear-gradient(90deg,#8e44ad {fill}%,#eee {fill}%)'>"
            f"</div>{html.escape(vgpu['virtual_gpu_id'])} · used {html.escape(format_bytes(used))}"
            f" · free {html.escape(format_bytes(free))} of {html.escape(format_bytes(size))}</div>")


class ModelPanel(LivePanel):
    css_class = "gswarm-model-panel"

    def __init__(self, client: GswarmClient | None = None, interval: float = 2.0) -> None:
        self.client = client or GswarmClient()
        self.header = w.HTML()
        self.grid = w.HTML()
        self.model = w.Dropdown(description="model", options=[])
        self.source = w.Dropdown(description="source", options=[WHOLE_MODEL])
        self.target = w.Dropdown(description="target", options=[])
        self.move_button = w.Button(description="Move", icon="arrow-right",
                                    tooltip="move the copy on source to target")
        self.copy_button = w.Button(description="Copy", icon="copy",
                                    tooltip="copy source to target")
        self.delete_button = w.Button(description="Delete", button_style="danger", icon="trash",
                                      tooltip="drop the copy on source (every copy: the model)")
        self.move_button.on_click(lambda _: self.move(self.model.value, self.source.value,
                                                      self.target.value))
        self.copy_button.on_click(lambda _: self.copy(self.model.value, self.source.value,
                                                      self.target.value))
        self.delete_button.on_click(lambda _: self.delete(self.model.value, self.source.value))
        self._updating = False  # the panel itself is changing the dropdowns
        self.model.observe(self._on_pick, names="value")
        self.source.observe(self._on_pick, names="value")
        self.target.observe(self._on_pick, names="value")
        actions = w.VBox([
            w.HBox([self.model, self.source, self.target], layout=w.Layout(flex_flow="row wrap")),
            w.HBox([self.move_button, self.copy_button, self.delete_button]),
        ])
        self.progress = w.VBox()
        self.cells: dict[Cell, dict[str, str]] = {}  # (device, node) -> {model: status}
        self.copies: dict[str, list[str]] = {}  # model -> its copies' qualified devices
        self.nodes: list[str] = []
        self.devices: list[str] = []
        self.task_bars: dict[str, TaskBar] = {}
        self.reserved: dict[Cell, list[dict[str, Any]]] = {}  # (device, node) -> allocations
        self.quotas: dict[Cell, dict[str, Any]] = {}  # (vgpuN, node) -> its vGPU record
        self._lock = threading.RLock()
        super().__init__([self.header, self.grid, actions, self.progress], interval)
        self.refresh()

    # -- reading and drawing ------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the nodes, the registry and the running model tasks once, and redraw."""
        with self._lock:
            try:
                nodes = self.client.nodes()
                models = self.client.models.list()
                tasks = self._running_tasks(models)
            except GswarmError as exc:
                self.refresh_failed(exc)
                return
            self.reserved = self._allocations()
            self.refreshed()
            self._draw_map(nodes, models)
            self._draw_tasks(tasks)
            self.copies = {m["model_name"]: [loc["device"] for loc in m["locations"]]
                           for m in models}
            self._set_choices(nodes)
            self.header.value = (f"<b>gswarm models</b> · {len(models)} models · "
                                 f"{len(self.task_bars)} model tasks running")

    def _set_choices(self, nodes: list[dict[str, Any]]) -> None:
        """The dropdowns: the models, the picked model's copies, every device of every node."""
        self._updating = True
        try:
            names = sorted(self.copies)
            _offer(self.model, [(n, n) for n in names])
            copies = sorted(self.copies.get(self.model.value or "", []), key=qualified_order)
            _offer(self.source, [(c, c) for c in copies] + [WHOLE_MODEL])
            targets = sorted((f"{n['node_id']}:{d}" for n in nodes
                              for d in n["capabilities"]["storage"]), key=qualified_order)
            _offer(self.target, [(t, t) for t in targets])
        finally:
            self._updating = False

    def _on_pick(self, change: dict[str, Any]) -> None:
        if self._updating:
            return
        self.clear_error()  # picking is the user's next action
        if change["owner"] is self.model:
            with self._lock:  # not interleaved with a refresh offering the last model's copies
                self._updating = True
                try:
                    copies = sorted(self.copies.get(change["new"] or "", []),
                                    key=qualified_order)
                    _offer(self.source, [(c, c) for c in copies] + [WHOLE_MODEL])
                finally:
                    self._updating = False

    def _running_tasks(self, models: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = {loc["task_id"] for m in models for loc in m["locations"]
               if loc["status"] == "copying" and loc.get("task_id")}
        ids |= set(self.task_bars)  # keep following a task until it is seen ending
        found = []
        for task_id in sorted(ids):
            try:
                found.append(self.client.tasks.get(task_id))
            except GswarmError:
                continue  # gone from the queue: nothing to draw
        return found

    def _allocations(self) -> dict[Cell, list[dict[str, Any]]]:
        """The allocations the caller may see, by cell (none when it may see none)."""
        try:
            allocations = self.client.compute.allocations()
        except GswarmError:
            return {}
        by_cell: dict[Cell, list[dict[str, Any]]] = {}
        for alloc in allocations:
            by_cell.setdefault((alloc["device"], alloc["node"]), []).append(alloc)
        return by_cell

    def _draw_map(self, nodes: list[dict[str, Any]], models: list[dict[str, Any]]) -> None:
        cells: dict[Cell, dict[str, str]] = {}
        devices = {d for n in nodes for d in n["capabilities"]["storage"]}
        self.quotas = {(v["device"], n["node_id"]): v for n in nodes
                       for v in n["capabilities"].get("vgpus", []) if "memory_size" in v}
        for model in models:
            for loc in model["locations"]:
                node, _, device = loc["device"].rpartition(":")
                cells.setdefault((device, node), {})[model["model_name"]] = loc["status"]
                devices.add(device)
        node_names = sorted({n["node_id"] for n in nodes} | {node for _, node in cells})
        self.cells, self.nodes = cells, node_names
        devices |= {device for device, _ in self.reserved}
        self.devices = sorted(devices, key=device_order)
        self.grid.value = self.map_html()

    def map_html(self) -> str:
        """The tier map as an HTML table."""
        cell = "border:1px solid #ddd;padding:4px;vertical-align:top;min-width:8em"
        head = "".join(f"<th style='{cell}'>{html.escape(n)}</th>" for n in self.nodes)
        rows = []
        for device in self.devices:
            tds = "".join(
                f"<td style='{cell}'>"
                + "".join(chip(name, status)
                          for name, status in sorted(self.cells.get((device, node), {}).items()))
                + "".join(band(a) for a in self.reserved.get((device, node), []))
                + (quota(self.quotas[(device, node)]) if (device, node) in self.quotas else "")
                + "</td>"
                for node in self.nodes
            )
            rows.append(f"<tr><th style='{cell}'>{html.escape(device)}</th>{tds}</tr>")
        return ("<table style='border-collapse:collapse'><thead><tr><th></th>"
                f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")

    def _draw_tasks(self, tasks: list[dict[str, Any]]) -> None:
        bars = {}
        for task in tasks:
            if task["status"] not in _ACTIVE:
                continue
            bar = self.task_bars.get(task["task_id"]) or TaskBar(task["task_id"])
            bar.show(task)
            bars[task["task_id"]] = bar
        for gone in set(self.task_bars) - set(bars):
            self.task_bars[gone].close()
        self.task_bars = bars
        self.progress.children = list(bars.values())

    @property
    def model_names(self) -> list[str]:
        """The models offered in the model dropdown."""
        return [value for _, value in self.model.options]

    def chips(self, node: str, device: str) -> dict[str, str]:
        """The models drawn in one cell of the map, with their copies' status."""
        return dict(self.cells.get((device, node), {}))

    # -- actions ------------------------------------------------------------------------------

    def copy(self, name: str | None, source: str, target: str) -> dict[str, Any] | None:
        """Start a copy task (as the Copy button does); answer the task, or None if refused."""
        return self._act(name, lambda: self.client.models.copy(name, source.strip(),
                                                               target.strip()))

    def move(self, name: str | None, source: str, target: str) -> dict[str, Any] | None:
        return self._act(name, lambda: self.client.models.move(name, source.strip(),
                                                               target.strip()))

    def delete(self, name: str | None, source: str = "") -> dict[str, Any] | None:
        """Drop the copy on `source`, or the whole model when `source` is empty."""
        device = source.strip() or None
        return self._act(name, lambda: self.client.models.delete(name, device=device))

    def _act(self, name: str | None, call: Any) -> dict[str, Any] | None:
        if not name:
            self.clear_error()
            self.show_error("no model to act on")
            return None
        answer = self.act(call)
        if answer is not None:
            self.refresh()
        return answer  # type: ignore[no-any-return]

    # -- life cycle ---------------------------------------------------------------------------

    def owned(self) -> list[w.Widget]:
        return list(self.task_bars.values())
