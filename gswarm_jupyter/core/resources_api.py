"""The request and response shapes of resource allocations (`/resources`, API.md section 5)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .pagination import PageQuery
from .validation import INT64_MAX

MAX_DURATION_S = 30 * 24 * 3600  # an allocation lasts at most 30 days


class ResourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=128,
                         description="who it is for; a key's own identity is recorded for keys")
    memory_size: int = Field(gt=0, le=INT64_MAX, description="bytes reserved on the device")
    compute_units: float = Field(ge=0, allow_inf_nan=False, description="compute units reserved: at most what the device offers (a vGPU its own units, a physical device 100) less other allocations' units")
    duration: float = Field(gt=0, le=MAX_DURATION_S, description="seconds until it ends")
    device: str | None = Field(
        None, description="node1:gpu0, node1:vgpu0, node1:dram (bare on a one-node cluster); "
        "none: the least loaded GPU, else a vGPU, else dram")

    def placed_bytes(self) -> int:
        """What a key's `max_bytes` quota is asked for."""
        return self.memory_size


class AllocationRecord(BaseModel):
    allocation_id: str
    user_id: str
    owner: str = Field(description="the identity it belongs to: key:<key_id>, or the user_id "
                       "given by the server's owner")
    gpu_id: str = Field(description="the qualified device reserved on, e.g. node1:gpu0")
    node: str
    device: str = Field(description="the bare device")
    memory_size: int
    compute_units: float
    start_time: str
    end_time: str
    used_bytes: int = Field(description="bytes of the owner's copies and chunks on the device now")


class AllocationList(BaseModel):
    allocations: list[AllocationRecord]
    total: int
    page: int
    per_page: int


class AllocationQuery(PageQuery):
    model_config = ConfigDict(extra="forbid")

    owner: str | None = Field(None, description="only this owner's (admin)")
