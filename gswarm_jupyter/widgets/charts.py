"""Live charts drawn by the browser with bqplot (SVG, sharp at any size): `TimeChart`, named lines
over wall-clock time with units on both axes, and `Sparkline`, one small line with its reading.

Invariant: a chart only ever gains points. Each line keeps a rolling window of its newest `window`
points; `flush()` sends the x/y traits of the lines that gained points since the last flush, and
nothing else (no figure is rebuilt, no picture is rendered in Python)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import bqplot as bq
import ipywidgets as w
import numpy as np

# Colour per node (in order of first appearance), one palette for every chart of a panel.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
Point = tuple[float, float]  # (unix seconds, value in the chart's unit)


def as_dates(seconds: Iterable[float]) -> np.ndarray:
    """Unix seconds as datetime64[ms], what bqplot's DateScale draws."""
    ms = np.asarray(list(seconds), dtype=np.float64) * 1000.0
    return ms.astype(np.int64).astype("datetime64[ms]")


class TimeChart:
    """A figure of lines over time: `add(line, t, value)` then `flush()`."""

    def __init__(self, title: str, unit: str, window: int = 120, y_max: float | None = None,
                 tick_format: str | None = None, height: str = "220px") -> None:
        self.window = window
        self.x_scale = bq.DateScale()
        self.y_scale = bq.LinearScale(min=0.0, max=y_max)
        axes = [
            bq.Axis(scale=self.x_scale, label="time", tick_format="%H:%M:%S", num_ticks=4,
                    grid_lines="none"),
            bq.Axis(scale=self.y_scale, orientation="vertical", label=unit,
                    tick_format=tick_format, grid_lines="dashed", label_offset="40px"),
        ]
        self.figure = bq.Figure(
            title=title, marks=[], axes=axes, legend_location="top-left",
            fig_margin={"top": 30, "bottom": 36, "left": 56, "right": 30},
            title_style={"font-size": "13px"},
            legend_style={"fill": "white", "fill-opacity": 0.75, "stroke": "none"},
            legend_text={"font-size": "11px"},
            layout=w.Layout(width="100%", height=height, min_width="300px"),
        )
        self.figure.add_class("gswarm-chart")
        self.lines: dict[str, bq.Lines] = {}
        self.points: dict[str, deque[Point]] = {}
        self._dirty: set[str] = set()

    def add(self, line: str, t: float, value: float, color: str = PALETTE[0],
            style: str = "solid") -> bool:
        """Queue one point of `line` (made on first use); older or repeated times are ignored."""
        points = self.points.get(line)
        if points is None:
            points = self.points[line] = deque(maxlen=self.window)
            mark = bq.Lines(x=as_dates([]), y=np.array([]), labels=[line], colors=[color],
                            line_style=style, display_legend=True, stroke_width=1.6,
                            scales={"x": self.x_scale, "y": self.y_scale})
            self.lines[line] = mark
            self.figure.marks = [*self.figure.marks, mark]
        if points and t <= points[-1][0]:
            return False
        points.append((t, value))
        self._dirty.add(line)
        return True

    def flush(self) -> None:
        """Send the new points of every line that gained some."""
        for line in sorted(self._dirty):
            points, mark = self.points[line], self.lines[line]
            with mark.hold_sync():
                mark.x = as_dates(t for t, _ in points)
                mark.y = np.array([v for _, v in points], dtype=np.float64)
        self._dirty.clear()

    def set_y_max(self, y_max: float | None) -> None:
        if self.y_scale.max != y_max:
            self.y_scale.max = y_max

    def close(self) -> None:
        for mark in self.lines.values():
            mark.close()
        for axis in self.figure.axes:
            axis.close()
        self.x_scale.close()
        self.y_scale.close()
        self.figure.close()


class Sparkline(w.HBox):
    """A small line of the newest readings (0..`y_max`) and a label with the latest one."""

    def __init__(self, name: str, window: int = 60, y_max: float | None = 100.0,
                 color: str = PALETTE[0]) -> None:
        self.window = window
        self.points: deque[Point] = deque(maxlen=window)
        self.x_scale = bq.DateScale()
        self.y_scale = bq.LinearScale(min=0.0, max=y_max)
        self.line = bq.Lines(x=as_dates([]), y=np.array([]), colors=[color], fill="bottom",
                             fill_opacities=[0.15], stroke_width=1.4,
                             scales={"x": self.x_scale, "y": self.y_scale})
        self.figure = bq.Figure(
            marks=[self.line], axes=[], fig_margin={"top": 3, "bottom": 3, "left": 2, "right": 2},
            min_aspect_ratio=0.01, max_aspect_ratio=100,
            layout=w.Layout(width="130px", height="34px"),
        )
        self.figure.add_class("gswarm-sparkline")
        self.name = w.HTML(f"<span style='color:#555'>{name}</span>",
                           layout=w.Layout(width="3.5em"))
        self.reading = w.HTML(layout=w.Layout(width="11em"))
        super().__init__([self.name, self.figure, self.reading],
                         layout=w.Layout(align_items="center"))

    def add(self, t: float, value: float, reading: str) -> None:
        """One new point (ignored unless newer than the last) and the label to show."""
        self.reading.value = reading
        if self.points and t <= self.points[-1][0]:
            return
        self.points.append((t, value))
        with self.line.hold_sync():
            self.line.x = as_dates(p for p, _ in self.points)
            self.line.y = np.array([v for _, v in self.points], dtype=np.float64)

    def close(self) -> None:
        for widget in (self.line, self.x_scale, self.y_scale, self.figure, self.name,
                       self.reading):
            widget.close()
        super().close()
