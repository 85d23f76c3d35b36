"""A route table that serves both tornado (patterns) and the OpenAPI document (operations).

Invariant: a route's path, its methods and what the document says of them live in one `Route`;
tornado's pattern and the document's path parameters are both read from that same path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ..core.names import DEVICE, MODEL_NAME

CONTROL = "/gswarm/api/v1"
COMPUTE = "/gswarm/compute/v1"


@dataclass(frozen=True)
class Link:
    """A follow-up a success answer makes possible (an OpenAPI link): the operation `method`
    `path`, its path parameters taken from fields of the answer's `data`."""

    name: str
    method: str
    path: str
    parameters: dict[str, str]  # path parameter -> field of the answer's data


@dataclass(frozen=True)
class Op:
    """One method of a route, as the OpenAPI document describes it.

    `status` is the success answer's status (None: the route has none, e.g. one answering
    only `501`); `errors` the error statuses beyond those every route may answer;
    `alt_content` other content types the success answer may take (e.g. `text/csv`); `links`
    the operations its answer leads to.
    """

    summary: str
    response: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    status: int | None = 200
    errors: tuple[int, ...] = ()
    content_type: str = "application/json"
    enveloped: bool = True
    alt_content: tuple[str, ...] = ()
    links: tuple[Link, ...] = ()


@dataclass(frozen=True)
class PathParam:
    """What the document says of one path parameter; `pattern` only where a name has a fixed
    form (opaque ids have none)."""

    description: str
    pattern: str | None = None
    example: str | None = None


def _whole(pattern: re.Pattern[str]) -> str:
    """A fullmatch pattern as a JSON-schema pattern (which searches unless anchored)."""
    return rf"^(?:{pattern.pattern})$"


MODEL = PathParam("model name", _whole(MODEL_NAME), "fuzz-mlp")

# Path parameters by name: every route naming `{chunk_id}` means the same thing by it.
PATH_PARAMS: dict[str, PathParam] = {
    "name": MODEL,
    "model_id": MODEL,
    "node": PathParam("node (the Dask worker's name)", None, "node1"),
    "device": PathParam(
        "qualified (node1:dram) or bare (dram) device",
        rf"^(?:[^:/]+:)?(?:{DEVICE.pattern})$",
        "node1:disk",
    ),
    "chunk_id": PathParam("chunk id", r"^chunk-[0-9a-f]{12}$", "chunk-0123456789ab"),
    "task_id": PathParam("task id (opaque)"),
    "request_id": PathParam("request id (opaque)"),
    "service_id": PathParam("service id (opaque)"),
    "session_id": PathParam("session id (opaque)"),
    "allocation_id": PathParam("allocation id (opaque)"),
    "gpu_id": PathParam("virtual GPU id (opaque)"),
    "key_id": PathParam("API key id", r"^key_[0-9a-f]{12}$", "key_0123456789ab"),
}


def task_links() -> tuple[Link, ...]:
    """What a task-starting answer (`data.task_id`) leads to."""
    task = f"{CONTROL}/queue/tasks/{{task_id}}"
    return (
        Link("task", "get", task, {"task_id": "task_id"}),
        Link("cancel", "post", f"{task}/cancel", {"task_id": "task_id"}),
    )


def resource_links(path: str, param: str, field: str, suffixes: tuple[str, ...] = (),
                   delete: bool = True) -> tuple[Link, ...]:
    """What a created resource (`data.<field>`) leads to: GET `path` (and `path/<suffix>`), and
    DELETE `path` where the route has it."""
    links = [Link("get", "get", path, {param: field})]
    links += [Link(s, "get", f"{path}/{s}", {param: field}) for s in suffixes]
    if delete:
        links.append(Link("delete", "delete", path, {param: field}))
    return tuple(links)


# What each route touches (API.md section 7): a call needs `gswarm:<resource>:<read|write>` for
# every resource named, `read` for GET and WebSocket subscriptions, `write` for the rest. A path
# maps to its resources, or to them by method where its methods touch different things.
_BOTH = ("compute", "models")  # loading or training a model changes the registry too
ROUTE_RESOURCES: dict[str, tuple[str, ...] | dict[str, tuple[str, ...]]] = {
    f"{CONTROL}/health": ("cluster",),
    f"{CONTROL}/metrics": ("cluster",),
    f"{CONTROL}/openapi.json": ("cluster",),
    f"{CONTROL}/nodes": ("cluster",),
    f"{CONTROL}/nodes/{{node}}": ("cluster",),
    f"{CONTROL}/nodes/{{node}}/resources": ("cluster",),
    f"{CONTROL}/nodes/{{node}}/models": ("cluster", "models"),
    "/gswarm/metrics": ("cluster",),
    f"{CONTROL}/models": ("models",),
    f"{CONTROL}/models/{{name}}": ("models",),
    f"{CONTROL}/models/{{name}}/locations": ("models",),
    f"{CONTROL}/models/{{name}}/locations/{{device}}": ("models",),
    f"{CONTROL}/models/{{name}}/download": ("models",),
    f"{CONTROL}/models/{{name}}/move": ("models",),
    f"{CONTROL}/models/{{name}}/copy": ("models",),
    f"{CONTROL}/ws/models": ("models",),
    f"{CONTROL}/services": _BOTH,
    f"{CONTROL}/services/{{service_id}}": _BOTH,
    f"{CONTROL}/services/{{service_id}}/status": _BOTH,
    f"{CONTROL}/data": ("data",),
    f"{CONTROL}/data/{{chunk_id}}": ("data",),
    f"{CONTROL}/data/{{chunk_id}}/content": ("data",),
    f"{CONTROL}/data/{{chunk_id}}/move": ("data",),
    f"{CONTROL}/data/{{chunk_id}}/transfer": ("data",),
    f"{CONTROL}/queue": ("queue",),
    f"{CONTROL}/queue/tasks": ("queue",),
    f"{CONTROL}/queue/tasks/{{task_id}}": ("queue",),
    f"{CONTROL}/queue/tasks/{{task_id}}/cancel": ("queue",),
    f"{CONTROL}/queue/history": ("queue",),
    f"{CONTROL}/ws/tasks": ("queue",),
    f"{CONTROL}/profiler/status": ("profiler",),
    f"{CONTROL}/profiler/profiling/start": ("profiler",),
    f"{CONTROL}/profiler/profiling/stop": ("profiler",),
    f"{CONTROL}/profiler/profiling/sessions": ("profiler",),
    f"{CONTROL}/profiler/profiling/sessions/{{name}}": ("profiler",),
    f"{CONTROL}/profiler/clients": ("profiler",),
    f"{CONTROL}/profiler/metrics/latest": ("profiler",),
    f"{CONTROL}/ws/profiling": ("profiler",),
    f"{CONTROL}/keys": ("admin",),
    f"{CONTROL}/keys/{{key_id}}": ("admin",),
    f"{CONTROL}/keys/{{key_id}}/usage": ("admin",),
    f"{CONTROL}/audit": ("admin",),
    f"{COMPUTE}/health": ("compute",),
    f"{COMPUTE}/models": {"get": ("compute",), "post": _BOTH},  # a load may register
    f"{COMPUTE}/models/{{model_id}}": ("compute",),
    f"{COMPUTE}/models/{{model_id}}/optimize": _BOTH,
    f"{COMPUTE}/inference": ("compute",),
    f"{COMPUTE}/inference/async": ("compute",),
    f"{COMPUTE}/inference/batch": ("compute",),
    f"{COMPUTE}/inference/{{request_id}}": ("compute",),
    f"{COMPUTE}/sessions": ("compute",),
    f"{COMPUTE}/sessions/{{session_id}}": ("compute",),
    f"{COMPUTE}/metrics": ("compute",),
    f"{COMPUTE}/metrics/history": ("compute",),
    f"{COMPUTE}/training": _BOTH,
    f"{COMPUTE}/training/async": _BOTH,
    f"{COMPUTE}/training/{{request_id}}": ("compute",),
    # Others' allocations need gswarm:admin besides (checked by the handler, per allocation).
    f"{COMPUTE}/resources": ("compute",),
    f"{COMPUTE}/resources/{{allocation_id}}": ("compute",),
    f"{CONTROL}/ws/resources": ("compute",),
    f"{COMPUTE}/virtualization/gpus": ("compute", "admin"),
    f"{COMPUTE}/virtualization/gpus/{{gpu_id}}": ("compute", "admin"),
}


@dataclass(frozen=True)
class Route:
    path: str  # OpenAPI style, e.g. /gswarm/api/v1/nodes/{node}
    handler: type
    ops: dict[str, Op] = field(default_factory=dict)
    tag: str = "system"
    params: dict[str, PathParam] = field(default_factory=dict)  # overrides of PATH_PARAMS

    def resources(self, method: str) -> tuple[str, ...]:
        """What a call of `method` touches (empty: the route declares nothing, a bug)."""
        declared = ROUTE_RESOURCES.get(self.path, ())
        if isinstance(declared, dict):
            return declared.get(method.lower(), ())
        return declared

    @property
    def pattern(self) -> str:
        return re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path)

    def path_params(self) -> dict[str, PathParam]:
        """Each `{name}` of the path, in order, with what the document says of it."""
        names = re.findall(r"\{(\w+)\}", self.path)
        return {n: self.params.get(n) or PATH_PARAMS.get(n) or PathParam(n) for n in names}

    def tornado(self) -> tuple[str, type, dict[str, Any]]:
        return (self.pattern, self.handler, {"route": self})
