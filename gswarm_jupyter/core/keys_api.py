"""The request and response shapes of API keys, their usage, and the audit log (API.md 7)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from .clock import LATEST_EPOCH_S
from .pagination import PageQuery
from .validation import INT64_MAX

Role = Literal["viewer", "user", "admin"]


class Quotas(BaseModel):
    """Limits of one key; a missing one is no limit beyond the server's defaults."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = Field(
        None, ge=1, le=INT64_MAX, description="replaces the server's per-identity rate for this key"
    )
    max_concurrent_tasks: int | None = Field(
        None, ge=1, le=INT64_MAX, description="queued tasks (pending or running) the key may have at once"
    )
    max_bytes: int | None = Field(
        None, ge=0, le=INT64_MAX,
        description="bytes of models, chunks and allocations the key may have placed"
    )


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    scopes: list[str] = Field(
        default_factory=list, description="gswarm:<resource>:<read|write> (or :* for both)"
    )
    roles: list[Role] = Field(default_factory=list)
    expires_at: str | Annotated[float, Field(le=LATEST_EPOCH_S, allow_inf_nan=False)] | None = Field(
        None, description="ISO 8601 time or epoch seconds (at most 9999-12-31T23:59:59Z)")
    quotas: Quotas = Field(default_factory=Quotas)


class KeyRecord(BaseModel):
    key_id: str
    name: str
    scopes: list[str]
    roles: list[Role]
    expires_at: str | None
    quotas: Quotas
    created_at: str
    last_used_at: str | None
    revoked: bool
    revoked_at: str | None = None


class KeyCreated(KeyRecord):
    secret: str = Field(description="gsk_...: shown in this answer only")


class KeyList(BaseModel):
    keys: list[KeyRecord]
    total: int
    page: int
    per_page: int


class KeyUsage(BaseModel):
    key_id: str
    requests_last_minute: int = Field(description="requests counted in the current minute window")
    concurrent_tasks: int = Field(description="the key's tasks pending or running now")
    bytes_placed: int = Field(
        description="bytes of the chunks and models it placed that exist now, plus what its "
        "allocations reserve beyond them"
    )
    allocations: list[dict[str, object]] = Field(
        default_factory=list, description="its live resource allocations (/resources records)"
    )
    quotas: Quotas


class AuditQuery(PageQuery):
    model_config = ConfigDict(extra="forbid")

    key_id: str | None = None
    resource: str | None = None
    decision: Literal["allowed", "denied"] | None = None
    since: str | None = Field(None, description="epoch seconds or an ISO 8601 time")
    until: str | None = Field(None, description="epoch seconds or an ISO 8601 time")


class AuditEvent(BaseModel):
    time: str
    identity: str
    key_id: str | None
    method: str
    route: str
    resource: str
    action: str
    decision: Literal["allowed", "denied"]
    status: int


class AuditList(BaseModel):
    events: list[AuditEvent]
    total: int
    page: int
    per_page: int
