"""The API's response records as pydantic models: they document the routes in the OpenAPI
document, and the server tests check real responses against them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class DeviceUsage(Record):
    total: int | None
    used: int | None
    available: int | None


class SchedulerState(Record):
    address: str | None
    embedded: bool
    connected: bool
    reason: str | None
    dashboard_path: str | None = None  # the Dask dashboard's page, relative to the server's URL


class Health(Record):
    status: Literal["healthy", "degraded"]
    version: str
    uptime: float
    nodes_online: int
    nodes_total: int
    scheduler: SchedulerState
    reason: str | None = None


class Gpu(Record):
    device: str
    device_id: int
    name: str
    memory_total: int
    memory_used: int | None = None
    memory_available: int | None = None
    usage: float | None = None
    temperature: float | None = None
    compute_capability: str | None = None


class Capabilities(Record):
    gpus: list[Gpu]
    vgpus: list[dict]
    storage: dict[str, int | None]


class NodeSummary(Record):
    node_id: str
    hostname: str | None
    ip_address: str | None
    status: Literal["online", "offline"]
    last_heartbeat: str | None
    capabilities: Capabilities


class NodeDetail(NodeSummary):
    devices: dict[str, DeviceUsage]
    store: str | None


class NodeList(Record):
    nodes: list[NodeSummary]
    total: int
    page: int
    per_page: int


class CpuUsage(Record):
    cores: int | None
    usage: float | None


class NodeResources(Record):
    node_id: str
    storage: dict[str, DeviceUsage]
    compute: dict[str, dict]


class NodeMetrics(Record):
    status: Literal["online", "offline"]
    cpu: CpuUsage | None
    devices: dict[str, dict]


class ClusterMetrics(Record):
    nodes: dict[str, NodeMetrics]
    tasks: dict[str, int]
    requests: dict[str, int]
    timestamp: str


class ComputeHealth(Record):
    status: Literal["healthy", "degraded"]
    timestamp: str
    version: str
    uptime: float
    gpu_status: Literal["available", "unavailable"]
    memory_usage: float | None
