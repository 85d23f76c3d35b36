"""`ProfilerPanel`: live charts per node and device from the profiler's latest frames, a
pause/resume toggle, and buttons that start and stop a named session. It refreshes itself while
displayed and stops when closed; failures are shown in the panel, never raised."""

from __future__ import annotations

import io
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import ipywidgets as w

from ..client import GswarmClient
from ..core.errors import GswarmError
from .panel import LivePanel

# What the charts draw: ratios 0..1, so one axis fits every device. `memory_ratio` is derived
# (used / total); the rest are the frames' own readings.
CHART_METRICS = ("cpu_utilization_ratio", "utilization_ratio", "memory_ratio")
Key = tuple[str, str, str]  # node, device, metric


def readings(frame: dict[str, Any]) -> Iterator[tuple[str, str, float]]:
    """(device, metric, value) of each numeric reading of a frame, and each device's memory_ratio."""
    devices = [("host", frame.get("host") or {})]
    devices += [(gpu["device"], gpu) for gpu in frame.get("gpus") or ()]
    for device, values in devices:
        for metric, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                yield device, metric, float(value)
        used, total = values.get("memory_used_bytes"), values.get("memory_total_bytes")
        if used is not None and total:
            yield device, "memory_ratio", used / total


class ProfilerPanel(LivePanel):
    def __init__(self, client: GswarmClient | None = None, interval: float = 1.0,
                 window: int = 120, metrics: Sequence[str] = CHART_METRICS) -> None:
        self.client = client or GswarmClient()
        self.window = window
        self.metrics = tuple(metrics)
        self.series: dict[Key, deque[tuple[float, float]]] = {}
        self.seen: dict[str, tuple[str, int]] = {}  # node -> (instance, seq) of its last frame
        self.paused = False
        self._lock = threading.Lock()

        self.header = w.HTML()
        self.name = w.Text(placeholder="session name", description="session")
        self.every = w.BoundedIntText(value=1000, min=10, max=3_600_000, description="every ms")
        self.start_button = w.Button(description="Start", icon="play", button_style="success")
        self.stop_button = w.Button(description="Stop", icon="stop", button_style="danger")
        self.pause_button = w.ToggleButton(description="Pause", icon="pause")
        self.start_button.on_click(lambda _: self.start_session())
        self.stop_button.on_click(lambda _: self.stop_session())
        self.pause_button.observe(self._on_pause, names="value")
        self.chart = w.Image(format="png")
        self.message = w.HTML()
        self.error = w.HTML()
        controls = w.HBox([self.name, self.every, self.start_button, self.stop_button,
                           self.pause_button])
        super().__init__([self.header, controls, self.chart, self.message, self.error], interval)
        self.refresh()

    # -- reading and drawing -------------------------------------------------------------------

    def refresh(self) -> None:
        """Take the latest frames once and redraw (nothing while paused)."""
        if self.paused:
            return
        with self._lock:
            try:
                frames = self.client.profiler.latest()
                status = self.client.profiler.status()
            except GswarmError as exc:
                self.show_error(exc)
                return
            self.error.value = ""
            active = ", ".join(s["name"] for s in status["active_sessions"]) or "none"
            self.header.value = (f"<b>gswarm profiler</b> · {status['connected_clients']} samplers"
                                 f" · recording: {active}")
            if self._take(frames) or not self.chart.value:
                self.chart.value = self.draw()

    def _take(self, frames: list[dict[str, Any]]) -> int:
        """Add the frames not seen yet to the rolling windows; answers how many were new."""
        new = 0
        for frame in frames:
            mark = (frame.get("instance", ""), int(frame.get("seq", 0)))
            if self.seen.get(frame["node"]) == mark:
                continue
            self.seen[frame["node"]] = mark
            new += 1
            for device, metric, value in readings(frame):
                key = (frame["node"], device, metric)
                series = self.series.get(key)
                if series is None:
                    series = self.series[key] = deque(maxlen=self.window)
                series.append((frame["timestamp_unix_s"], value))
        return new

    @property
    def charts(self) -> list[tuple[str, str]]:
        """(node, device) of every chart, in drawing order."""
        return sorted({(node, device) for node, device, _ in self.series})

    def draw(self) -> bytes:
        """The rolling windows as PNG: one chart per node and device, seconds before now."""
        from matplotlib.figure import Figure

        charts = self.charts
        now = time.time()
        nodes = sorted({n for n, _ in charts}) or ["(no samplers)"]
        devices = sorted({d for _, d in charts}, key=lambda d: (d != "host", d)) or ["host"]
        fig = Figure(figsize=(4 * len(devices), 1.8 * len(nodes)), layout="constrained")
        axes = fig.subplots(len(nodes), len(devices), sharex=True, sharey=True, squeeze=False)
        for i, node in enumerate(nodes):
            for j, device in enumerate(devices):
                ax = axes[i][j]
                ax.set_title(f"{node}:{device}", fontsize=8)
                ax.set_ylim(0, 1.05)
                ax.grid(alpha=0.3)
                for metric in self.metrics:
                    points = self.series.get((node, device, metric))
                    if points:
                        ax.plot([t - now for t, _ in points], [v for _, v in points],
                                label=metric.replace("_", " "), linewidth=1, marker=".")
                if ax.lines:
                    ax.legend(fontsize=6, loc="upper left")
        for ax in axes[-1]:
            ax.set_xlabel("seconds ago", fontsize=8)
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=72)
        return out.getvalue()

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
        name = self.name.value.strip()
        if not name:
            self.show_error("give the session a name first")
            return None
        try:
            record = self.client.profiler.start(name, sampling_frequency_ms=self.every.value)
        except GswarmError as exc:
            self.show_error(exc)
            return None
        self.error.value = ""
        self.message.value = f"recording <b>{name}</b> every {record['sampling_frequency_ms']} ms"
        return dict(record)

    def stop_session(self) -> dict[str, Any] | None:
        """Stop the session named in the name field; answers its record and summary."""
        name = self.name.value.strip()
        if not name:
            self.show_error("give the session a name first")
            return None
        try:
            session = self.client.profiler.stop(name)
        except GswarmError as exc:
            self.show_error(exc)
            return None
        self.error.value = ""
        self.message.value = (f"<b>{name}</b> stopped: {session['frames_collected']} frames over "
                              f"{session['duration_s']:.1f} s; <code>%gswarm profile show {name}"
                              "</code> for its report")
        return dict(session)
