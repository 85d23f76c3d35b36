"""The data pool's request and response shapes."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from .chunks import MAX_DIMS, ChunkFormat, ChunkType
from .pagination import PageQuery
from .queue_api import TaskStarting
from .validation import INT64_MAX


class ChunkMetadataIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shape: list[Annotated[int, Field(ge=0, le=INT64_MAX)]] | None = Field(None, max_length=MAX_DIMS)
    dtype: str | None = None


class ChunkCreate(TaskStarting):
    """`data` (base64) or `url` (http, https, or file:// under the model roots)."""

    model_config = ConfigDict(extra="forbid")

    data: str | None = None
    url: str | None = None
    type: ChunkType = "input"
    format: ChunkFormat = "bytes"
    device: str
    metadata: ChunkMetadataIn = Field(default_factory=ChunkMetadataIn)

    def placed_bytes(self) -> int | None:
        """The bytes this request places when it carries them (base64 `data`); None for a url."""
        if self.data is None:
            return None
        text = "".join(self.data.split())
        return len(text) * 3 // 4 - text[-2:].count("=")


class ChunkMove(TaskStarting):
    model_config = ConfigDict(extra="forbid")

    target_device: str
    bandwidth_limit: int | None = Field(None, gt=0, le=INT64_MAX, description="bytes per second")


class ChunkTransfer(TaskStarting):
    model_config = ConfigDict(extra="forbid")

    target_node: str
    target_device: str
    delete_source: bool = False
    bandwidth_limit: int | None = Field(None, gt=0, le=INT64_MAX, description="bytes per second")


class ChunkQuery(PageQuery):
    model_config = ConfigDict(extra="forbid")

    device: str | None = None
    type: str | None = None
    node: str | None = None


class DeleteQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    force: bool = False


class ChunkLocation(BaseModel):
    device: str
    status: str


class ChunkMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")

    shape: list[int] | None
    dtype: str | None
    created_by: str | None
    created_at: str
    access_count: int


class ChunkRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    chunk_id: str
    chunk_type: str
    size: int | None
    format: str
    locations: list[ChunkLocation]
    metadata: ChunkMetadata
    references: int
    task_id: str | None = None
    error: dict[str, Any] | None = None


class ChunkList(BaseModel):
    chunks: list[ChunkRecord]
    total: int
    page: int
    per_page: int


class ChunkDeleted(BaseModel):
    chunk_id: str
    deleted: bool
    locations_removed: list[str]
