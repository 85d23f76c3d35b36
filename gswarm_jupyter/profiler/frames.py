"""A frame: one sample of one node at one moment, as a plain dict (JSON as stored and served).

```
{"node": "node1", "instance": "3f2a...", "seq": 17, "timestamp": "2026-...Z",
 "timestamp_unix_s": 1767225600.25, "sessions": ["train"],
 "host": {"cpu_utilization_ratio": 0.4, "memory_used_bytes": ..., ...},
 "gpus": [{"device": "gpu0", "utilization_ratio": 0.9, ...,
           "processes": [{"pid", "used_memory_bytes"}]}]}
```

Units are in the names. A host reading that cannot be taken is `null`; a node without NVML has
`"gpus": []` (GPU fields absent, not zero).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

Frame = dict[str, Any]

HOST_METRICS: tuple[str, ...] = (
    "cpu_utilization_ratio",
    "memory_used_bytes",
    "memory_total_bytes",
    "disk_read_bytes_per_s",
    "disk_write_bytes_per_s",
    "network_rx_bytes_per_s",
    "network_tx_bytes_per_s",
)
GPU_METRICS: tuple[str, ...] = (
    "utilization_ratio",
    "memory_used_bytes",
    "memory_total_bytes",
    "temperature_celsius",
    "power_watts",
    "pcie_rx_bytes_per_s",
    "pcie_tx_bytes_per_s",
    "nvlink_rx_bytes_per_s",
    "nvlink_tx_bytes_per_s",
)
ALL_METRICS: tuple[str, ...] = tuple(dict.fromkeys(HOST_METRICS + GPU_METRICS))
HOST_DEVICE = "host"


def readings(frame: Frame) -> Iterator[tuple[str, str, float]]:
    """(device, metric, value) for every numeric reading the frame holds (nulls skipped)."""
    for metric, value in (frame.get("host") or {}).items():
        if value is not None:
            yield HOST_DEVICE, metric, float(value)
    for gpu in frame.get("gpus") or ():
        for metric in GPU_METRICS:
            value = gpu.get(metric)
            if value is not None:
                yield gpu["device"], metric, float(value)


def keep_metrics(frame: Frame, metrics: Iterable[str] | None) -> Frame:
    """The frame with only `metrics` (all when None); GPU processes stay with the GPU."""
    if not metrics:
        return frame
    wanted = set(metrics)
    out = dict(frame)
    out["host"] = {k: v for k, v in (frame.get("host") or {}).items() if k in wanted}
    out["gpus"] = [
        {k: v for k, v in gpu.items() if k in wanted or k in ("device", "processes")}
        for gpu in frame.get("gpus") or ()
    ]
    return out


def csv_rows(frames: Iterable[Frame]) -> Iterator[list[Any]]:
    """A header, then one row per frame and device: wide, one column per metric."""
    yield ["timestamp", "timestamp_unix_s", "node", "seq", "device", *ALL_METRICS]
    for frame in frames:
        head = [frame.get("timestamp"), frame.get("timestamp_unix_s"), frame["node"], frame["seq"]]
        host = frame.get("host") or {}
        yield [*head, HOST_DEVICE, *(_cell(host.get(m)) for m in ALL_METRICS)]
        for gpu in frame.get("gpus") or ():
            yield [*head, gpu["device"], *(_cell(gpu.get(m)) for m in ALL_METRICS)]


def _cell(value: Any) -> Any:
    return "" if value is None else value
