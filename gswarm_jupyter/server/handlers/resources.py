"""Resource allocations (compute plane `/resources`) and their `/ws/resources` stream: thin
adapters over `cluster.tenancy.allocations.Allocations`.

An allocation belongs to the identity that made it: an API key's own (`key:<key_id>`; the body's
`user_id` is then informational), else the `user_id` the server's owner gave. A key sees and frees
only its own unless it holds `gswarm:admin`; the server's owner sees and frees every one.
"""

from __future__ import annotations

from typing import Any

from ...core.access import Caller
from ...core.pagination import paginate
from ...core.resources_api import (
    AllocationList,
    AllocationQuery,
    AllocationRecord,
    ResourceCreate,
)
from ...core.scopes import missing, required
from ..base import GswarmHandler
from ..routes import COMPUTE, CONTROL, Op, Route, resource_links
from ..websocket import GswarmSocket, socket_op


def _admin(caller: Caller | None, method: str) -> bool:
    """The server's owner, or a key holding `gswarm:admin` for this method."""
    if caller is None or caller.key is None:
        return caller is not None and caller.authenticated
    return not missing(caller.key.held, required(("admin",), method))


class _Resources(GswarmHandler):
    auth_resource = "gswarm:compute"

    def _scope(self) -> str | None:
        """Whose allocations this caller may touch: None for every one (admin)."""
        method = (self.request.method or "GET").upper()
        if _admin(self._caller, method):
            return None
        assert self._caller is not None
        return self._caller.identity


class ResourcesHandler(_Resources):
    def get(self) -> None:
        q = self.query(AllocationQuery)
        scope = self._scope()
        owner = scope if scope is not None else q.owner
        allocations = self.gswarm.allocations
        items = [allocations.record(a) for a in allocations.all(owner)]
        self.reply(paginate(items, q, "allocations"))

    def post(self) -> None:
        req = self.body(ResourceCreate)  # a key's max_bytes is checked here
        caller = self._caller
        assert caller is not None
        owner = caller.identity if caller.key is not None else req.user_id
        alloc = self.gswarm.allocations.reserve(
            owner, req.user_id, req.memory_size, req.compute_units, req.duration, req.device
        )
        location = f"{self.base_url.rstrip('/')}{COMPUTE}/resources/{alloc.allocation_id}"
        self.reply(self.gswarm.allocations.record(alloc), 201, {"Location": location})


class ResourceHandler(_Resources):
    def get(self, allocation_id: str) -> None:
        allocations = self.gswarm.allocations
        self.reply(allocations.record(allocations.get(allocation_id, self._scope())))

    def delete(self, allocation_id: str) -> None:
        alloc = self.gswarm.allocations.free(allocation_id, self._scope())
        self.reply({**alloc.record(), "status": "freed"})


class ResourcesSocket(GswarmSocket):
    """Allocation changes as `{"event": "allocation", "data": {<allocation record>, "change":
    created|freed|expired}}`; a key without `gswarm:admin` hears of its own only."""

    auth_resource = "gswarm:compute"

    def open(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().open(*args, **kwargs)
        self.gswarm.allocations.listeners.add(self._on_change)

    def on_close(self) -> None:
        self.gswarm.allocations.listeners.discard(self._on_change)

    def _on_change(self, event: dict[str, Any]) -> None:
        caller = self._caller
        if not _admin(caller, "GET") and (caller is None or event["owner"] != caller.identity):
            return
        if not self.send_event("allocation", event):
            self.on_close()


class AllocationFreed(AllocationRecord):
    status: str = "freed"


routes = [
    Route(
        f"{COMPUTE}/resources",
        ResourcesHandler,
        {
            "get": Op("Live resource allocations (a key's own unless it holds gswarm:admin)",
                      AllocationList, query=AllocationQuery, errors=(400,)),
            "post": Op("Reserve memory and compute units on a device until `duration` ends; "
                       "enforced where copies and chunks are placed", AllocationRecord,
                       body=ResourceCreate, status=201, errors=(400, 404, 409, 503, 507),
                       links=resource_links(f"{COMPUTE}/resources/{{allocation_id}}",
                                            "allocation_id", "allocation_id")),
        },
        tag="compute",
    ),
    Route(
        f"{COMPUTE}/resources/{{allocation_id}}",
        ResourceHandler,
        {
            "get": Op("One allocation", AllocationRecord, errors=(403, 404)),
            "delete": Op("Free an allocation", AllocationFreed, errors=(403, 404)),
        },
        tag="compute",
    ),
    Route(
        f"{CONTROL}/ws/resources",
        ResourcesSocket,
        {"get": socket_op("Allocation changes: created, freed, expired")},
        tag="compute",
    ),
]
