"""The request and response shapes of virtual GPUs (`/virtualization/gpus`, API.md section 5)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .pagination import PageQuery
from .validation import INT64_MAX

SchedulingPolicy = Literal["round_robin", "weighted"]


class VgpuCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    virtual_gpu_id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
        description="the caller's name for it (unique); its device on the node is vgpuN")
    memory_size: int = Field(gt=0, le=INT64_MAX, description="bytes of hard memory quota, carved from the "
                             "physical GPU or (backing cpu) from the node's free dram")
    compute_units: int = Field(ge=1, le=1000, description="its weight in the fair queueing "
                               "of batches on its physical device")
    scheduling_policy: SchedulingPolicy = Field(
        "weighted", description="weighted: batch shares follow compute_units; round_robin: "
        "equal turns")
    node: str | None = Field(None, description="default: the online node with most free memory")
    physical_device: str | None = Field(
        None, description="gpuN to carve from (backing cuda); dram or none on a node without a "
        "GPU (backing cpu)")


class VgpuRecord(BaseModel):
    virtual_gpu_id: str
    node: str
    device: str = Field(description="its device on the node, e.g. vgpu0 (node1:vgpu0 qualified)")
    physical_gpu_id: str = Field(description="the qualified physical device it is carved "
                                 "from: node1:gpu0, or node1:dram for backing cpu")
    backing: Literal["cuda", "cpu"]
    memory_size: int
    memory_used: int = Field(description="bytes of model copies and chunks placed on it now")
    memory_available: int
    compute_units: int
    scheduling_policy: SchedulingPolicy
    status: Literal["active"]
    owner: str
    created_at: str


class VgpuQuery(PageQuery):
    node: str | None = None


class VgpuDeleted(BaseModel):
    virtual_gpu_id: str
    deleted: bool
    removed: dict[str, list[str]] = Field(
        description="what force removed from it: services, models, chunks")
