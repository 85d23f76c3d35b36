"""The model registry's request and response shapes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel

from .pagination import PageQuery
from .queue_api import TaskRecord, TaskStarting
from .validation import INT64_MAX


class ModelCreate(TaskStarting):
    """`POST /models`. `model_size` is accepted but measured, never taken from the client."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_name: str
    source_url: str
    model_type: str | None = None
    model_size: int | None = Field(None, ge=0, le=INT64_MAX, description="ignored: the size is measured")
    metadata: dict[str, Any] = Field(default_factory=dict)
    download_to: str | None = Field(None, description="[node:]device; default the first online "
                                    "node's disk")
    checksum: str | None = Field(None, description="sha256 (hex) the download must match")
    evict: bool = False

    def placed_bytes(self) -> int | None:
        """What a key's `max_bytes` is asked for: unknown until fetched (None: refused only when
        the key is already at its quota)."""
        return None


class ModelQuery(PageQuery):
    model_config = ConfigDict(extra="forbid")

    type: str | None = None
    location: str | None = Field(None, description="qualified (node1:dram) or bare (dram) device")
    status: str | None = None


class ModelDeleteQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str | None = None
    force: bool = False


class ForceQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    force: bool = False


class LocationCreate(TaskStarting):
    model_config = ConfigDict(extra="forbid")

    device: str
    evict: bool = False


class DownloadRequest(TaskStarting):
    model_config = ConfigDict(extra="forbid")

    target_device: str
    source_url: str | None = None
    verify_checksum: bool = True
    checksum: str | None = None
    evict: bool = False


class MoveRequest(TaskStarting):
    model_config = ConfigDict(extra="forbid")

    source_device: str
    target_device: str
    keep_source: bool = False
    verify_checksum: bool = False
    bandwidth_limit: int | None = Field(None, gt=0, le=INT64_MAX, description="bytes per second")
    evict: bool = False


class CopyRequest(TaskStarting):
    model_config = ConfigDict(extra="forbid")

    source_device: str
    target_device: str
    bandwidth_limit: int | None = Field(None, gt=0, le=INT64_MAX, description="bytes per second")
    verify_checksum: bool = False
    evict: bool = False


class Location(BaseModel):
    model_config = ConfigDict(extra="allow")

    device: str
    status: str
    size: int | None
    updated_at: str


class ModelRecord(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model_name: str
    model_type: str | None
    model_size: int | None
    format: str | None
    checksum: str | None
    locations: list[Location]
    services: dict[str, str]
    status: str
    version: int
    metadata: dict[str, Any]


class ModelList(BaseModel):
    models: list[ModelRecord]
    total: int
    page: int
    per_page: int


class LocationList(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_name: str
    locations: list[Location]


class ModelDeleted(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model_name: str
    deleted: bool
    locations_removed: list[str]


class CopyDropped(BaseModel):
    """One copy dropped (`?device=` or `/locations/{device}`): the copies that remain."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model_name: str
    device: str
    deleted: bool
    locations: list[Location]


class ModelOrCopyDeleted(RootModel[ModelDeleted | CopyDropped]):
    """`DELETE /models/{name}`: the whole model without `device`, one copy with it."""


class ModelTask(TaskRecord):
    """A task-starting route's answer: the task record with the queue's view of it."""

    position: int | None = None
    estimated_time: float | None = None


class NodeModel(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model_name: str
    model_type: str | None
    device: str
    status: str
    size: int | None


class NodeModelList(BaseModel):
    node_id: str
    models: list[NodeModel]
