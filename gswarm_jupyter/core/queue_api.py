"""The task queue's request and response shapes (query parameters and records)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .tasks import PRIORITIES, Priority, Status

FinishedStatus = Literal["completed", "failed", "cancelled"]


class TaskListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    type: str | None = None
    limit: int = Field(100, ge=1, le=1000)


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: FinishedStatus | None = None
    since: str | None = Field(None, description="epoch seconds or an ISO 8601 time")
    limit: int = Field(100, ge=1, le=1000)


class TaskStarting(BaseModel):
    """What every task-starting request accepts."""

    priority: Priority = "normal"
    dependencies: list[str] = Field(default_factory=list)


class TaskResources(BaseModel):
    devices: list[str]
    models: list[str]
    chunks: list[str]


class TaskRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    task_id: str
    task_type: str
    priority: Priority
    status: Status
    dependencies: list[str]
    resources: TaskResources
    created_at: float
    started_at: float | None
    completed_at: float | None
    progress: int = Field(ge=0, le=100)
    result: Any = None
    error: dict[str, Any] | None = None


class TaskList(BaseModel):
    tasks: list[TaskRecord]
    total: int


class QueueConfig(BaseModel):
    max_concurrent_tasks: int
    priority_levels: list[str] = Field(default_factory=lambda: list(PRIORITIES))
    resource_tracking: bool = True


class QueueStatus(BaseModel):
    pending: int
    running: int
    completed: int
    failed: int
    cancelled: int
    config: QueueConfig
