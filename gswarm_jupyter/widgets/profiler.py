"""`ProfilerPanel`: live charts drawn by the browser (bqplot) from the profiler's latest frames,
a pause/resume toggle, and buttons that start and stop a named session.

Host CPU, memory, network and disk are always charted, one line per node; GPU utilisation,
memory, power and temperature are charted per device as soon as NVML reports them. Each refresh
appends the frames not seen yet (nothing while paused); failures are shown in the panel, never
raised."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as w

from ..client import GswarmClient
from ..core.errors import GswarmError
from .charts import PALETTE, TimeChart
from .panel import LivePanel

GIB = float(1 << 30)
LINE_STYLES = ("solid", "dashed")  # the first and second reading of a chart (rx/tx, read/write)


@dataclass(frozen=True)
class ChartSpec:
    """One chart: which readings (metric, line suffix) it draws, scaled into the unit of its axis."""

    key: str
    title: str
    unit: str
    readings: tuple[tuple[str, str], ...]
    scale: float = 1.0
    y_max: float | None = None
    tick_format: str | None = None
    gpu: bool = False
    total: str | None = None  # a metric whose value (scaled) tops the axis, e.g. memory total


HOST_CHARTS = (
    ChartSpec("cpu", "Host CPU", "CPU (%)", (("cpu_utilization_ratio", ""),), 100.0, 100.0, ".0f"),
    ChartSpec("memory", "Host memory", "used (GiB)", (("memory_used_bytes", ""),), 1 / GIB,
              tick_format=".1f", total="memory_total_bytes"),
    ChartSpec("network", "Host network", "bytes/s",
              (("network_rx_bytes_per_s", "rx"), ("network_tx_bytes_per_s", "tx")),
              tick_format=".2s"),
    ChartSpec("disk", "Host disk", "bytes/s",
              (("disk_read_bytes_per_s", "read"), ("disk_write_bytes_per_s", "write")),
              tick_format=".2s"),
)
GPU_CHARTS = (
    ChartSpec("gpu_utilization", "GPU utilisation", "utilisation (%)",
              (("utilization_ratio", ""),), 100.0, 100.0, ".0f", gpu=True),
    ChartSpec("gpu_memory", "GPU memory", "used (GiB)", (("memory_used_bytes", ""),), 1 / GIB,
              tick_format=".1f", gpu=True, total="memory_total_bytes"),
    ChartSpec("gpu_power", "GPU power", "power (W)", (("power_watts", ""),), tick_format=".0f",
              gpu=True),
    ChartSpec("gpu_temperature", "GPU temperature", "temperature (°C)",
              (("temperature_celsius", ""),), tick_format=".0f", gpu=True),
)
CHARTS = HOST_CHARTS + GPU_CHARTS
Line = tuple[str, str]  # chart key, line label


@dataclass(frozen=True)
class ChartPoint:
    chart: str
    line: str
    node: str
    style: str
    value: float


def chart_points(frame: dict[str, Any], specs: Sequence[ChartSpec] = CHARTS) -> Iterator[ChartPoint]:
    """The points one frame adds: host charts per node, GPU charts per node and device, each
    value in its chart's unit. Readings that are null or absent add nothing."""
    node = frame["node"]
    host = frame.get("host") or {}
    for spec in specs:
        devices = ([(gpu.get("device", "gpu"), gpu) for gpu in frame.get("gpus") or ()]
                   if spec.gpu else [("", host)])
        for device, values in devices:
            for i, (metric, suffix) in enumerate(spec.readings):
                value = values.get(metric)
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    continue
                label = " ".join(p for p in (f"{node}:{device}" if device else node, suffix) if p)
                yield ChartPoint(spec.key, label, node, LINE_STYLES[i % 2], float(value) * spec.scale)


def chart_totals(frame: dict[str, Any], specs: Sequence[ChartSpec] = CHARTS) -> dict[str, float]:
    """The largest total (e.g. memory size, in the chart's unit) of each chart in one frame."""
    out: dict[str, float] = {}
    for spec in specs:
        if spec.total is None:
            continue
        devices = (frame.get("gpus") or ()) if spec.gpu else [frame.get("host") or {}]
        for values in devices:
            total = values.get(spec.total)
            if isinstance(total, (int, float)) and total > 0:
                out[spec.key] = max(out.get(spec.key, 0.0), float(total) * spec.scale)
    return out


class ProfilerPanel(LivePanel):
    css_class = "gswarm-profiler-panel"

    def __init__(self, client: GswarmClient | None = None, interval: float = 1.0,
                 window: int = 120, charts: Sequence[str] | None = None) -> None:
        self.client = client or GswarmClient()
        self.window = window
        wanted = set(charts) if charts else None
        self.specs = [s for s in CHARTS if wanted is None or s.key in wanted]
        self.charts: dict[str, TimeChart] = {}
        self.seen: dict[str, tuple[str, int]] = {}  # node -> (instance, seq) of its last frame
        self.node_colors: dict[str, str] = {}
        self.paused = False
        self._lock = threading.Lock()

        self.header = w.HTML()
        self.name = w.Text(placeholder="session name", description="session",
                           layout=w.Layout(width="18em"))
        self.every = w.BoundedIntText(value=1000, min=10, max=3_600_000, description="every ms",
                                      layout=w.Layout(width="12em"))
        small = w.Layout(width="7em")
        self.start_button = w.Button(description="Start", icon="play", button_style="success",
                                     tooltip="record a session of this name", layout=small)
        self.stop_button = w.Button(description="Stop", icon="stop", button_style="danger",
                                    tooltip="stop the session of this name", layout=small)
        self.pause_button = w.ToggleButton(description="Pause", icon="pause", layout=small,
                                           tooltip="freeze the charts")
        self.start_button.on_click(lambda _: self.start_session())
        self.stop_button.on_click(lambda _: self.stop_session())
        self.pause_button.observe(self._on_pause, names="value")
        self.grid = w.GridBox(layout=w.Layout(
            grid_template_columns="repeat(auto-fill, minmax(360px, 1fr))", grid_gap="4px 8px",
            width="100%"))
        self.message = w.HTML()
        controls = w.HBox([self.name, self.every, self.start_button, self.stop_button,
                           self.pause_button], layout=w.Layout(flex_flow="row wrap"))
        for spec in self.specs:
            if not spec.gpu:  # host charts always; GPU charts once a GPU reports
                self._chart(spec)
        super().__init__([self.header, controls, self.grid, self.message], interval)
        self.refresh()

    # -- reading and drawing -------------------------------------------------------------------

    def refresh(self) -> None:
        """Take the latest frames once and append their new points (nothing while paused)."""
        if self.paused:
            return
        with self._lock:
            try:
                frames = self.client.profiler.latest()
                status = self.client.profiler.status()
            except GswarmError as exc:
                self.refresh_failed(exc)
                return
            self.refreshed()
            active = ", ".join(f"{s['name']} (every {s['sampling_frequency_ms']} ms)"
                               for s in status["active_sessions"]) or "none"
            self.header.value = (f"<b>gswarm profiler</b> · {status['connected_clients']} samplers"
                                 f" · recording: {active}")
            self._take(frames)

    def _take(self, frames: list[dict[str, Any]]) -> int:
        """Append the frames not seen yet to the charts; answers how many were new."""
        new = 0
        for frame in frames:
            node = frame["node"]
            mark = (frame.get("instance", ""), int(frame.get("seq", 0)))
            if self.seen.get(node) == mark:
                continue
            self.seen[node] = mark
            new += 1
            color = self.node_colors.setdefault(node, PALETTE[len(self.node_colors) % len(PALETTE)])
            t = float(frame["timestamp_unix_s"])
            for point in chart_points(frame, self.specs):
                chart = self.charts.get(point.chart) or self._chart(self._spec(point.chart))
                chart.add(point.line, t, point.value, color, point.style)
            for key, total in chart_totals(frame, self.specs).items():
                if key in self.charts:
                    self.charts[key].set_y_max(max(total, self.charts[key].y_scale.max or 0.0))
        for chart in self.charts.values():
            chart.flush()
        return new

    def _spec(self, key: str) -> ChartSpec:
        return next(s for s in self.specs if s.key == key)

    def _chart(self, spec: ChartSpec) -> TimeChart:
        chart = TimeChart(spec.title, spec.unit, self.window, spec.y_max, spec.tick_format)
        self.charts[spec.key] = chart
        order = [s.key for s in self.specs]
        self.grid.children = [self.charts[k].figure for k in order if k in self.charts]
        return chart

    @property
    def series(self) -> dict[Line, list[tuple[float, float]]]:
        """Every line's points as drawn: (chart, line) -> [(unix seconds, value in the unit)]."""
        return {(key, line): list(points) for key, chart in self.charts.items()
                for line, points in chart.points.items()}

    # -- controls ------------------------------------------------------------------------------

    def pause(self) -> None:
        self.pause_button.value = True

    def resume(self) -> None:
        self.pause_button.value = False

    def _on_pause(self, change: dict[str, Any]) -> None:
        self.paused = bool(change["new"])
        self.pause_button.description = "Resume" if self.paused else "Pause"
        self.pause_button.icon = "play" if self.paused else "pause"

    def start_session(self) -> dict[str, Any] | None:
        """Start the session named in the name field; answers its record (None on failure)."""
        name = self._session_name()
        if name is None:
            return None
        record = self.act(lambda: self.client.profiler.start(
            name, sampling_frequency_ms=self.every.value))
        if record is not None:
            self.message.value = (f"recording <b>{name}</b> every "
                                  f"{record['sampling_frequency_ms']} ms")
        return None if record is None else dict(record)

    def stop_session(self) -> dict[str, Any] | None:
        """Stop the session named in the name field; answers its record and summary."""
        name = self._session_name()
        if name is None:
            return None
        session = self.act(lambda: self.client.profiler.stop(name))
        if session is not None:
            self.message.value = (
                f"<b>{name}</b> stopped: {session['frames_collected']} frames over "
                f"{session['duration_s']:.1f} s; <code>%gswarm profile show {name}</code> for "
                "its report")
        return None if session is None else dict(session)

    def _session_name(self) -> str | None:
        name = self.name.value.strip()
        if not name:
            self.clear_error()
            self.show_error("give the session a name first")
            return None
        return name

    def close(self) -> None:
        super().close()
        for chart in self.charts.values():
            chart.close()

