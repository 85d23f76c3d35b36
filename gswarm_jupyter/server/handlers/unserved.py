"""Routes API.md documents that this build does not serve yet: they answer `501 NOT_IMPLEMENTED`
saying so, rather than a `404` that would claim they do not exist, or a fake success.

Every route API.md documents is served now; a documented route this build cannot serve would be
listed here, with its reason in `WHY`.
"""

from __future__ import annotations

from typing import Any

from tornado import web

from ...core.errors import NotImplementedFeature
from ..base import GswarmHandler
from ..routes import Op, Route

WHY: dict[str, str] = {}


class UnservedHandler(GswarmHandler):
    auth_resource = "gswarm:compute"
    feature = ""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        method = (self.request.method or "").lower()
        if self.route is None or method not in self.route.ops:
            raise web.HTTPError(405)  # a method the route does not document at all
        raise NotImplementedFeature(WHY[self.feature], {"feature": self.feature})

    get = post = delete = _refuse  # type: ignore[assignment]


def _route(path: str, handler: type, methods: tuple[str, ...]) -> Route:
    summary = "Not served by this build: answers 501 NOT_IMPLEMENTED"
    ops = {m: Op(summary, status=None, errors=(501,)) for m in methods}
    return Route(path, handler, ops, tag="compute")


routes: list[Route] = []
