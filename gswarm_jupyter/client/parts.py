"""What every group of routes shares: the paths, and the client it calls through."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

CONTROL = "gswarm/api/v1/"
COMPUTE = "gswarm/compute/v1/"
PROFILER = CONTROL + "profiler/"
MAX_PAGE = 500
FINISHED = ("completed", "failed", "cancelled")


def _clean(**params: Any) -> dict[str, Any]:
    """Query or body fields without the ones left unset."""
    return {k: v for k, v in params.items() if v is not None}


def _seg(text: str) -> str:
    """One URL path segment (a model name or device, e.g. `node1:dram`), escaped."""
    return quote(text, safe=":")


class _Part:
    """A group of routes (`client.data`, `client.tasks`, ...) sharing its client's transport:
    the sync client answers values, the async client awaitables of them."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._client._call(method, path, **kwargs)
