"""Request and response shapes of services (control plane) and the compute plane's models,
inference, sessions and metrics. Times are seconds, sizes bytes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .balancing import Policy
from .pagination import PageQuery
from .tasks import Priority
from .validation import FLOAT32_MAX, INT64_MAX

Framework = Literal["torch", "jax"]


class ServiceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    replicas: int | None = Field(None, ge=1, le=64, description="default: one per listed node, else 1")
    load_balancing: Policy = "round_robin"
    max_batch_size: int = Field(32, ge=1, le=4096)
    batch_timeout_ms: float = Field(2.0, ge=0, le=10_000)
    timeout: float | None = Field(None, gt=0, description="seconds a request may take (504 after)")
    framework: Framework = "torch"


class ServiceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_name: str
    nodes: list[str] | None = None
    device: str | None = Field(None, description="dram, gpuN, vgpuN, or node:device")
    config: ServiceConfig = Field(default_factory=ServiceConfig)


class ReplicaRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    replica_id: str
    node: str
    device: str
    status: Literal["loading", "running", "stopping", "stopped", "failed"]
    memory_usage: int | None
    load_time: float | None
    error: str | None


class ServiceRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    service_id: str
    model_name: str
    node: str
    device: str
    status: Literal["loading", "running", "degraded", "stopping", "stopped", "failed"]
    reason: str | None = Field(None, description="why replicas are down (null while none is)")
    url: str
    framework: Framework
    replicas: list[ReplicaRecord]
    config: ServiceConfig
    created_at: str


class ServiceList(BaseModel):
    services: list[ServiceRecord]
    total: int
    page: int
    per_page: int


class ServiceStatus(ServiceRecord):
    requests_served: int
    requests_failed: int
    queue_depth: int
    latency_p50: float | None
    latency_p99: float | None
    batch_size_histogram: dict[str, int] = Field(description="rows per batch -> batches")


class ServiceStopped(BaseModel):
    model_config = ConfigDict(extra="allow")

    service_id: str
    status: Literal["stopped"]
    memory_freed: int


class ServiceQuery(PageQuery):
    model_config = ConfigDict(extra="forbid")

    model_name: str | None = None
    status: str | None = None


# -- compute plane ----------------------------------------------------------------------------


class ModelLoad(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_id: str
    model_type: str | None = None
    model_path: str | None = Field(None, description="builtin://..., file://..., or a path")
    max_batch_size: int = Field(32, ge=1, le=4096)
    max_sequence_length: int | None = Field(None, ge=1, le=INT64_MAX)
    enable_quantization: bool = False
    enable_mixed_precision: bool = False
    parameters: dict[str, Any] = Field(default_factory=dict)
    framework: Framework = "torch"
    device: str | None = None
    nodes: list[str] | None = None
    replicas: int | None = Field(None, ge=1, le=64)
    load_balancing: Policy = "round_robin"
    batch_timeout_ms: float = Field(2.0, ge=0, le=10_000)
    timeout: float | None = Field(None, gt=0)

    def placed_bytes(self) -> int | None:
        """What a key's `max_bytes` is asked for: a `model_path` registers a model of a size
        unknown until fetched (None: refused only at the quota); loading a registered one, none."""
        return None if self.model_path is not None else 0


class ModelLoaded(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model_id: str
    message: str
    memory_allocated: int
    load_time: float
    service_id: str


class LoadedModel(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model_id: str
    model_type: str
    status: str
    memory_usage: int
    load_time: float | None


class LoadedModels(BaseModel):
    models: list[LoadedModel]


class ModelUnloaded(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model_id: str
    status: Literal["unloaded"]
    services: list[str]
    memory_freed: int


class InferenceOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(
        None, ge=0, le=FLOAT32_MAX,
        description="0: greedy; absent: 1.0 (sampled, reproducible with seed)"
    )
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=0, le=4096)
    seed: int | None = Field(None, ge=0, le=INT64_MAX)


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_id: str
    input_data: Any = Field(
        description="float rows (vectors), token-id rows (language models), or strings (models "
        "with a tokenizer: embedding, causal_lm, classifier)"
    )
    batch_size: int | None = Field(None, ge=1, le=INT64_MAX)
    sequence_length: int | None = Field(None, ge=1, le=INT64_MAX)
    data_type: str | None = None
    session_id: str | None = None
    options: InferenceOptions = Field(default_factory=InferenceOptions)
    timeout: float | None = Field(None, gt=0, description="seconds; 504 REQUEST_TIMEOUT after")
    service_id: str | None = Field(None, description="answer from this service only")


class AsyncInferenceRequest(InferenceRequest):
    priority: Priority = "normal"


class InferenceResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    request_id: str
    output_data: list[Any] = Field(
        description="per input row: a float vector (mlp, embedding), class scores (classifier), "
        "or the generated token ids only (gpt, causal_lm)"
    )
    output_text: list[str] | None = Field(
        None, description="the generated ids decoded, for language models with a tokenizer"
    )
    inference_time: float
    tokens_generated: int
    memory_used: int | None
    service_id: str
    node: str


class AsyncAccepted(BaseModel):
    model_config = ConfigDict(extra="allow")

    request_id: str
    status: Literal["queued"]
    estimated_completion: str | None
    task_id: str


class AsyncStatus(BaseModel):
    model_config = ConfigDict(extra="allow")

    request_id: str
    status: Literal["queued", "running", "completed", "failed", "cancelled"]
    output_data: list[Any] | None = None
    output_text: list[str] | None = None
    inference_time: float | None = None
    completion_time: str | None = None
    error: dict[str, Any] | None = None


class BatchInference(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: list[dict[str, Any]] = Field(min_length=1, max_length=1000)


class BatchItem(BaseModel):
    """On success the fields of `InferenceResult` and `error: null`; on failure `error` only."""

    model_config = ConfigDict(extra="allow")

    request_id: str | None = None
    output_data: list[Any] | None = None
    inference_time: float | None = None
    tokens_generated: int | None = None
    memory_used: int | None = None
    service_id: str | None = None
    node: str | None = None
    error: dict[str, Any] | None


class BatchResults(BaseModel):
    results: list[BatchItem]
    total_time: float
    succeeded: int
    failed: int


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    user_id: str = Field(min_length=1, max_length=256)
    model_id: str
    ttl_seconds: float = Field(3600, gt=0, le=7 * 24 * 3600)


class SessionRecord(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    session_id: str
    user_id: str
    model_id: str
    created_at: str
    expires_at: str


class ComputeMetricValues(BaseModel):
    model_config = ConfigDict(extra="allow")

    gpu_utilization: float | None
    memory_utilization: float | None
    temperature: float | None
    power_usage: float | None
    throughput: float | None = Field(description="requests per second over the window")
    latency: float | None = Field(description="mean seconds over the window")
    active_requests: int
    queued_requests: int
    total_requests: int
    successful_requests: int
    failed_requests: int


class ComputeMetrics(BaseModel):
    metrics: ComputeMetricValues


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start_time: str | None = Field(None, description="epoch seconds or ISO 8601; default end - 1 h")
    end_time: str | None = Field(None, description="epoch seconds or ISO 8601; default now")
    interval: float = Field(60, gt=0, le=86_400)


class MetricsBucket(BaseModel):
    model_config = ConfigDict(extra="allow")

    start: str
    end: str
    requests: int
    successful: int
    failed: int
    throughput: float | None
    latency_mean: float | None
    latency_p50: float | None
    latency_p99: float | None


class MetricsHistory(BaseModel):
    start_time: str
    end_time: str
    interval: float
    buckets: list[MetricsBucket]
