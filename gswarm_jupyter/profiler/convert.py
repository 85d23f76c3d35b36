"""Frames, plans, sessions and summaries between their dict form and the proto messages."""

from __future__ import annotations

from typing import Any

from ..core.clock import iso_many
from ._proto import profiler_pb2 as pb
from .frames import GPU_METRICS, HOST_METRICS, Frame
from .summary import Summary


def frame_to_proto(frame: Frame) -> pb.Frame:
    message = pb.Frame(
        node=frame["node"],
        instance=frame.get("instance", ""),
        seq=int(frame.get("seq", 0)),
        timestamp_unix_s=float(frame["timestamp_unix_s"]),
        sessions=list(frame.get("sessions") or ()),
    )
    for metric, value in (frame.get("host") or {}).items():
        if value is not None and metric in HOST_METRICS:
            setattr(message.host, metric, _typed(metric, value))
    for gpu in frame.get("gpus") or ():
        out = message.gpus.add(device=gpu["device"])
        for metric in GPU_METRICS:
            if gpu.get(metric) is not None:
                setattr(out, metric, _typed(metric, gpu[metric]))
        for proc in gpu.get("processes") or ():
            p = out.processes.add(pid=int(proc["pid"]))
            if proc.get("used_memory_bytes") is not None:
                p.used_memory_bytes = int(proc["used_memory_bytes"])
    return message


# The metric each proto field carries, by field descriptor (upb hands out the same descriptor
# objects, so `ListFields()`, which answers only the fields set, maps without a name lookup).
_HOST_FIELDS = {fd: fd.name for fd in pb.HostMetrics.DESCRIPTOR.fields if fd.name in HOST_METRICS}
_GPU_FIELDS = {fd: fd.name for fd in pb.GpuMetrics.DESCRIPTOR.fields if fd.name in GPU_METRICS}
_NO_HOST: dict[str, Any] = dict.fromkeys(HOST_METRICS)
_NO_GPU: dict[str, Any] = {"device": None, **dict.fromkeys(GPU_METRICS), "processes": None}


def frame_from_proto(message: pb.Frame) -> Frame:
    """The frame dict of `message`: every metric present, None where the message has none.

    On the gRPC ingest path once per frame: only the fields set are read (`ListFields`), and
    a frame without GPUs never iterates its (empty) repeated field."""
    host = _NO_HOST.copy()
    for fd, value in message.host.ListFields():
        name = _HOST_FIELDS.get(fd)
        if name is not None:
            host[name] = value
    gpus = message.gpus
    return {
        "node": message.node,
        "instance": message.instance,
        "seq": message.seq,
        "timestamp": iso_many(message.timestamp_unix_s),
        "timestamp_unix_s": message.timestamp_unix_s,
        "sessions": message.sessions[:],
        "host": host,
        "gpus": [_gpu_from_proto(gpu) for gpu in gpus] if gpus else [],
    }


def _gpu_from_proto(message: pb.GpuMetrics) -> dict[str, Any]:
    gpu = _NO_GPU.copy()
    gpu["device"] = message.device
    for fd, value in message.ListFields():
        name = _GPU_FIELDS.get(fd)
        if name is not None:
            gpu[name] = value
    gpu["processes"] = [
        {
            "pid": p.pid,
            "used_memory_bytes": p.used_memory_bytes if p.HasField("used_memory_bytes") else None,
        }
        for p in message.processes
    ]
    return gpu


def plan_to_proto(plan: dict[str, int], idle_interval_ms: int) -> pb.SamplingPlan:
    return pb.SamplingPlan(sessions=plan, idle_interval_ms=idle_interval_ms)


def gpu_info_to_proto(gpu: dict[str, Any]) -> pb.GpuInfo:
    message = pb.GpuInfo(device_id=int(gpu.get("device_id") or 0), name=gpu.get("name") or "")
    if gpu.get("memory_total") is not None:
        message.memory_total_bytes = int(gpu["memory_total"])
    if gpu.get("compute_capability") is not None:
        message.compute_capability = gpu["compute_capability"]
    return message


def gpu_info_from_proto(message: pb.GpuInfo) -> dict[str, Any]:
    return {
        "device": f"gpu{message.device_id}",
        "device_id": message.device_id,
        "name": message.name,
        "memory_total": (
            message.memory_total_bytes if message.HasField("memory_total_bytes") else None
        ),
        "compute_capability": (
            message.compute_capability if message.HasField("compute_capability") else None
        ),
    }


def session_to_proto(record: dict[str, Any]) -> pb.SessionInfo:
    message = pb.SessionInfo(
        name=record["name"],
        status=record["status"],
        sampling_frequency_ms=record["sampling_frequency_ms"],
        nodes=record.get("nodes") or [],
        metrics=record.get("metrics") or [],
        start_time_unix_s=record["start_time_unix_s"],
        frames_collected=record["frames_collected"],
        tags={k: str(v) for k, v in (record.get("tags") or {}).items()},
    )
    if record.get("end_time_unix_s") is not None:
        message.end_time_unix_s = record["end_time_unix_s"]
    return message


def summary_to_proto(summary: Summary, into: Any) -> None:
    """Fill the `map<string, NodeSummary>` field `into` from `summary`."""
    for node, devices in summary.items():
        for device, metrics in devices.items():
            for metric, s in metrics.items():
                into[node].devices[device].metrics[metric].CopyFrom(
                    pb.MetricStats(
                        mean=s["mean"], max=s["max"], p95=s["p95"], count=int(s["count"])
                    )
                )


def _typed(metric: str, value: Any) -> Any:
    return int(value) if metric.endswith("_bytes") else float(value)
