"""Routes API.md documents that this build does not serve yet: they answer `501 NOT_IMPLEMENTED`
saying so, rather than a `404` that would claim they do not exist, or a fake success.

Resource reservations need a scheduler that enforces them; it does not exist here yet.
"""

from __future__ import annotations

from typing import Any

from tornado import web

from ...core.errors import NotImplementedFeature
from ..base import GswarmHandler
from ..routes import COMPUTE, Op, Route

WHY = {
    "resources": "resource reservations (/resources) are not served by this build",
}


class UnservedHandler(GswarmHandler):
    auth_resource = "gswarm:compute"
    feature = "resources"

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        method = (self.request.method or "").lower()
        if self.route is None or method not in self.route.ops:
            raise web.HTTPError(405)  # a method the route does not document at all
        raise NotImplementedFeature(WHY[self.feature], {"feature": self.feature})

    get = post = delete = _refuse  # type: ignore[assignment]


class ResourcesHandler(UnservedHandler):
    feature = "resources"


def _route(path: str, handler: type, methods: tuple[str, ...]) -> Route:
    summary = "Not served by this build: answers 501 NOT_IMPLEMENTED"
    ops = {m: Op(summary, status=None, errors=(501,)) for m in methods}
    return Route(path, handler, ops, tag="compute")


routes = [
    _route(f"{COMPUTE}/resources", ResourcesHandler, ("get", "post")),
    _route(f"{COMPUTE}/resources/{{allocation_id}}", ResourcesHandler, ("get", "delete")),
]
