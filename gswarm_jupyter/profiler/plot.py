"""A profiling session as a matplotlib PNG: one panel per metric, one line per node and device."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Sequence

from .frames import ALL_METRICS, Frame, readings

DEFAULT_METRICS = (
    "cpu_utilization_ratio",
    "memory_used_bytes",
    "utilization_ratio",
    "power_watts",
    "network_rx_bytes_per_s",
    "disk_write_bytes_per_s",
)


def plot_frames(
    frames: Sequence[Frame], metrics: Sequence[str] | None = None, title: str | None = None
) -> bytes:
    """PNG bytes. `metrics` defaults to the usual ones the frames hold; time is seconds from the
    first frame."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    series: dict[str, dict[str, tuple[list[float], list[float]]]] = defaultdict(dict)
    start = min((f["timestamp_unix_s"] for f in frames), default=0.0)
    for frame in frames:
        t = frame["timestamp_unix_s"] - start
        for device, metric, value in readings(frame):
            xs, ys = series[metric].setdefault(f"{frame['node']}:{device}", ([], []))
            xs.append(t)
            ys.append(value)
    wanted = [m for m in (metrics or DEFAULT_METRICS) if m in series] or [
        m for m in ALL_METRICS if m in series
    ][:4]
    fig = Figure(figsize=(9, 2.2 * max(1, len(wanted))), layout="constrained")
    axes = fig.subplots(max(1, len(wanted)), 1, sharex=True, squeeze=False)[:, 0]
    if not wanted:
        axes[0].text(0.5, 0.5, "no frames", ha="center", va="center", transform=axes[0].transAxes)
    for ax, metric in zip(axes, wanted):
        for label, (xs, ys) in sorted(series[metric].items()):
            ax.plot(xs, ys, label=label, linewidth=1)
        ax.set_ylabel(metric.replace("_", " "), fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("seconds since the first frame")
    if title:
        fig.suptitle(title)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=80)
    return out.getvalue()
