"""The profiler's request and response shapes (bodies, query parameters, records)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .validation import INT64_MAX

SessionStatus = Literal["running", "finished", "interrupted"]

MIN_FREQUENCY_MS = 10
MAX_FREQUENCY_MS = 3_600_000  # one sample an hour


class StartProfiling(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="letters, digits, '.', '_' or '-'; unique among running sessions")
    sampling_frequency_ms: int | None = Field(
        None, ge=MIN_FREQUENCY_MS, le=MAX_FREQUENCY_MS,
        description="sampling period in ms (default 1000, at least 10, at most 3,600,000)",
    )
    nodes: list[str] | None = Field(None, description="nodes to sample; every node when absent")
    metrics: list[str] | None = Field(None, description="metrics to keep; every metric when absent")
    tags: dict[str, str | Annotated[int, Field(ge=-INT64_MAX - 1, le=INT64_MAX)] | Annotated[float, Field(allow_inf_nan=False)] | bool] | None = Field(
        None,
        description="kept with the session and on each of its frames (e.g. a cell's execution count)",
    )


class StopProfiling(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str


class SessionQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["json", "csv", "png"] = Field(
        "json",
        description="json: the envelope with summary and frames; csv: the frames as CSV; "
        "png: a plot of the session",
    )
    metrics: str | None = Field(None, description="png only: comma-separated metrics to plot")


class LatestQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nodes: str | None = Field(None, description="comma-separated client ids")
    metrics: str | None = Field(None, description="comma-separated metric names")


class MetricStats(BaseModel):
    mean: float
    max: float
    p95: float
    count: int


# node -> device (host, gpu0, ...) -> metric -> stats
Summary = dict[str, dict[str, dict[str, MetricStats]]]


class SessionRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    status: SessionStatus
    sampling_frequency_ms: int
    nodes: list[str] | None
    metrics: list[str] | None
    tags: dict[str, Any] | None = None
    start_time: str
    end_time: str | None
    start_time_unix_s: float
    end_time_unix_s: float | None
    duration_s: float
    frames_collected: int


class SessionSummary(SessionRecord):
    summary: Summary


class SessionDetail(SessionSummary):
    frames: list[dict[str, Any]]


class SessionList(BaseModel):
    sessions: list[SessionRecord]
    total: int
    page: int
    per_page: int


class ActiveSession(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    start_time: str
    frames_collected: int


class ProfilerStatus(BaseModel):
    model_config = ConfigDict(extra="allow")

    is_profiling: bool
    active_sessions: list[ActiveSession]
    connected_clients: int
    enable_bandwidth_profiling: bool
    enable_nvlink_profiling: bool
    sampling_frequency_ms: int


class ClientGpu(BaseModel):
    device_id: int | None
    name: str | None
    memory_total: int | None
    compute_capability: str | None


class ProfilerClient(BaseModel):
    model_config = ConfigDict(extra="allow")

    client_id: str
    hostname: str | None
    gpus: list[ClientGpu]
    last_update: str | None
    status: Literal["connected", "disconnected"]


class ClientList(BaseModel):
    clients: list[ProfilerClient]
    total: int
    page: int
    per_page: int


class HostReadings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cpu_utilization_ratio: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    disk_read_bytes_per_s: float | None = None
    disk_write_bytes_per_s: float | None = None
    network_rx_bytes_per_s: float | None = None
    network_tx_bytes_per_s: float | None = None


class GpuReadings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str
    utilization_ratio: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    temperature_celsius: float | None = None
    power_watts: float | None = None
    pcie_rx_bytes_per_s: float | None = None
    pcie_tx_bytes_per_s: float | None = None
    nvlink_rx_bytes_per_s: float | None = None
    nvlink_tx_bytes_per_s: float | None = None
    processes: list[dict[str, Any]] = []


class FrameRecord(BaseModel):
    """One sample of one node: units in the names; GPU entries only where NVML answered."""

    model_config = ConfigDict(extra="forbid")

    node: str
    instance: str
    seq: int
    timestamp: str
    timestamp_unix_s: float
    sessions: list[str]
    tags: dict[str, Any] | None = None
    host: HostReadings
    gpus: list[GpuReadings]


class LatestFrames(BaseModel):
    frames: list[FrameRecord]
