"""A route table that serves both tornado (patterns) and the OpenAPI document (operations)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

CONTROL = "/gswarm/api/v1"
COMPUTE = "/gswarm/compute/v1"


@dataclass(frozen=True)
class Op:
    """One method of a route, as the OpenAPI document describes it."""

    summary: str
    response: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    content_type: str = "application/json"
    enveloped: bool = True


@dataclass(frozen=True)
class Route:
    path: str  # OpenAPI style, e.g. /gswarm/api/v1/nodes/{node}
    handler: type
    ops: dict[str, Op] = field(default_factory=dict)
    tag: str = "system"

    @property
    def pattern(self) -> str:
        return re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path)

    def tornado(self) -> tuple[str, type, dict[str, Any]]:
        return (self.pattern, self.handler, {"route": self})
