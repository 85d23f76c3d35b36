from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HostMetrics(_message.Message):
    __slots__ = ("cpu_utilization_ratio", "memory_used_bytes", "memory_total_bytes", "disk_read_bytes_per_s", "disk_write_bytes_per_s", "network_rx_bytes_per_s", "network_tx_bytes_per_s")
    CPU_UTILIZATION_RATIO_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    DISK_READ_BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    DISK_WRITE_BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    NETWORK_RX_BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    NETWORK_TX_BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    cpu_utilization_ratio: float
    memory_used_bytes: int
    memory_total_bytes: int
    disk_read_bytes_per_s: float
    disk_write_bytes_per_s: float
    network_rx_bytes_per_s: float
    network_tx_bytes_per_s: float
    def __init__(self, cpu_utilization_ratio: _Optional[float] = ..., memory_used_bytes: _Optional[int] = ..., memory_total_bytes: _Optional[int] = ..., disk_read_bytes_per_s: _Optional[float] = ..., disk_write_bytes_per_s: _Optional[float] = ..., network_rx_bytes_per_s: _Optional[float] = ..., network_tx_bytes_per_s: _Optional[float] = ...) -> None: ...

class GpuProcess(_message.Message):
    __slots__ = ("pid", "used_memory_bytes")
    PID_FIELD_NUMBER: _ClassVar[int]
    USED_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    pid: int
    used_memory_bytes: int
    def __init__(self, pid: _Optional[int] = ..., used_memory_bytes: _Optional[int] = ...) -> None: ...

class GpuMetrics(_message.Message):
    __slots__ = ("device", "utilization_ratio", "memory_used_bytes", "memory_total_bytes", "temperature_celsius", "power_watts", "pcie_rx_bytes_per_s", "pcie_tx_bytes_per_s", "nvlink_rx_bytes_per_s", "nvlink_tx_bytes_per_s", "processes")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    UTILIZATION_RATIO_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_CELSIUS_FIELD_NUMBER: _ClassVar[int]
    POWER_WATTS_FIELD_NUMBER: _ClassVar[int]
    PCIE_RX_BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    PCIE_TX_BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    NVLINK_RX_BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    NVLINK_TX_BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    device: str
    utilization_ratio: float
    memory_used_bytes: int
    memory_total_bytes: int
    temperature_celsius: float
    power_watts: float
    pcie_rx_bytes_per_s: float
    pcie_tx_bytes_per_s: float
    nvlink_rx_bytes_per_s: float
    nvlink_tx_bytes_per_s: float
    processes: _containers.RepeatedCompositeFieldContainer[GpuProcess]
    def __init__(self, device: _Optional[str] = ..., utilization_ratio: _Optional[float] = ..., memory_used_bytes: _Optional[int] = ..., memory_total_bytes: _Optional[int] = ..., temperature_celsius: _Optional[float] = ..., power_watts: _Optional[float] = ..., pcie_rx_bytes_per_s: _Optional[float] = ..., pcie_tx_bytes_per_s: _Optional[float] = ..., nvlink_rx_bytes_per_s: _Optional[float] = ..., nvlink_tx_bytes_per_s: _Optional[float] = ..., processes: _Optional[_Iterable[_Union[GpuProcess, _Mapping]]] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("node", "instance", "seq", "timestamp_unix_s", "sessions", "host", "gpus")
    NODE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    node: str
    instance: str
    seq: int
    timestamp_unix_s: float
    sessions: _containers.RepeatedScalarFieldContainer[str]
    host: HostMetrics
    gpus: _containers.RepeatedCompositeFieldContainer[GpuMetrics]
    def __init__(self, node: _Optional[str] = ..., instance: _Optional[str] = ..., seq: _Optional[int] = ..., timestamp_unix_s: _Optional[float] = ..., sessions: _Optional[_Iterable[str]] = ..., host: _Optional[_Union[HostMetrics, _Mapping]] = ..., gpus: _Optional[_Iterable[_Union[GpuMetrics, _Mapping]]] = ...) -> None: ...

class GpuInfo(_message.Message):
    __slots__ = ("device_id", "name", "memory_total_bytes", "compute_capability")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    device_id: int
    name: str
    memory_total_bytes: int
    compute_capability: str
    def __init__(self, device_id: _Optional[int] = ..., name: _Optional[str] = ..., memory_total_bytes: _Optional[int] = ..., compute_capability: _Optional[str] = ...) -> None: ...

class ConnectRequest(_message.Message):
    __slots__ = ("name", "hostname", "instance", "gpus")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    name: str
    hostname: str
    instance: str
    gpus: _containers.RepeatedCompositeFieldContainer[GpuInfo]
    def __init__(self, name: _Optional[str] = ..., hostname: _Optional[str] = ..., instance: _Optional[str] = ..., gpus: _Optional[_Iterable[_Union[GpuInfo, _Mapping]]] = ...) -> None: ...

class SamplingPlan(_message.Message):
    __slots__ = ("sessions", "idle_interval_ms")
    class SessionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    IDLE_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.ScalarMap[str, int]
    idle_interval_ms: int
    def __init__(self, sessions: _Optional[_Mapping[str, int]] = ..., idle_interval_ms: _Optional[int] = ...) -> None: ...

class ConnectResponse(_message.Message):
    __slots__ = ("node_id", "plan", "last_seq")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    plan: SamplingPlan
    last_seq: int
    def __init__(self, node_id: _Optional[str] = ..., plan: _Optional[_Union[SamplingPlan, _Mapping]] = ..., last_seq: _Optional[int] = ...) -> None: ...

class StreamMetricsResponse(_message.Message):
    __slots__ = ("accepted", "duplicates", "last_seq", "plan")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    duplicates: int
    last_seq: int
    plan: SamplingPlan
    def __init__(self, accepted: _Optional[int] = ..., duplicates: _Optional[int] = ..., last_seq: _Optional[int] = ..., plan: _Optional[_Union[SamplingPlan, _Mapping]] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("sessions", "nodes", "metrics")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedScalarFieldContainer[str]
    nodes: _containers.RepeatedScalarFieldContainer[str]
    metrics: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sessions: _Optional[_Iterable[str]] = ..., nodes: _Optional[_Iterable[str]] = ..., metrics: _Optional[_Iterable[str]] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SessionInfo(_message.Message):
    __slots__ = ("name", "status", "sampling_frequency_ms", "nodes", "metrics", "start_time_unix_s", "end_time_unix_s", "frames_collected", "tags")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FREQUENCY_MS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    FRAMES_COLLECTED_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    status: str
    sampling_frequency_ms: int
    nodes: _containers.RepeatedScalarFieldContainer[str]
    metrics: _containers.RepeatedScalarFieldContainer[str]
    start_time_unix_s: float
    end_time_unix_s: float
    frames_collected: int
    tags: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., status: _Optional[str] = ..., sampling_frequency_ms: _Optional[int] = ..., nodes: _Optional[_Iterable[str]] = ..., metrics: _Optional[_Iterable[str]] = ..., start_time_unix_s: _Optional[float] = ..., end_time_unix_s: _Optional[float] = ..., frames_collected: _Optional[int] = ..., tags: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("is_profiling", "active_sessions", "connected_clients", "sampling_frequency_ms")
    IS_PROFILING_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_CLIENTS_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FREQUENCY_MS_FIELD_NUMBER: _ClassVar[int]
    is_profiling: bool
    active_sessions: _containers.RepeatedCompositeFieldContainer[SessionInfo]
    connected_clients: int
    sampling_frequency_ms: int
    def __init__(self, is_profiling: _Optional[bool] = ..., active_sessions: _Optional[_Iterable[_Union[SessionInfo, _Mapping]]] = ..., connected_clients: _Optional[int] = ..., sampling_frequency_ms: _Optional[int] = ...) -> None: ...

class StartProfilingRequest(_message.Message):
    __slots__ = ("name", "sampling_frequency_ms", "nodes", "metrics", "tags")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FREQUENCY_MS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    sampling_frequency_ms: int
    nodes: _containers.RepeatedScalarFieldContainer[str]
    metrics: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., sampling_frequency_ms: _Optional[int] = ..., nodes: _Optional[_Iterable[str]] = ..., metrics: _Optional[_Iterable[str]] = ..., tags: _Optional[_Mapping[str, str]] = ...) -> None: ...

class StopProfilingRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class MetricStats(_message.Message):
    __slots__ = ("mean", "max", "p95", "count")
    MEAN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    P95_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    mean: float
    max: float
    p95: float
    count: int
    def __init__(self, mean: _Optional[float] = ..., max: _Optional[float] = ..., p95: _Optional[float] = ..., count: _Optional[int] = ...) -> None: ...

class DeviceSummary(_message.Message):
    __slots__ = ("metrics",)
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MetricStats
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MetricStats, _Mapping]] = ...) -> None: ...
    METRICS_FIELD_NUMBER: _ClassVar[int]
    metrics: _containers.MessageMap[str, MetricStats]
    def __init__(self, metrics: _Optional[_Mapping[str, MetricStats]] = ...) -> None: ...

class NodeSummary(_message.Message):
    __slots__ = ("devices",)
    class DevicesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: DeviceSummary
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[DeviceSummary, _Mapping]] = ...) -> None: ...
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.MessageMap[str, DeviceSummary]
    def __init__(self, devices: _Optional[_Mapping[str, DeviceSummary]] = ...) -> None: ...

class StopProfilingResponse(_message.Message):
    __slots__ = ("session", "summary")
    class SummaryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: NodeSummary
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[NodeSummary, _Mapping]] = ...) -> None: ...
    SESSION_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    session: SessionInfo
    summary: _containers.MessageMap[str, NodeSummary]
    def __init__(self, session: _Optional[_Union[SessionInfo, _Mapping]] = ..., summary: _Optional[_Mapping[str, NodeSummary]] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[SessionInfo]
    def __init__(self, sessions: _Optional[_Iterable[_Union[SessionInfo, _Mapping]]] = ...) -> None: ...
