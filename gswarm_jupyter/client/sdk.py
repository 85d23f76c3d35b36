"""`GswarmClient` and `AsyncGswarmClient`: the same API, over a sync or an async httpx client.

Each API method is written once (here for the system routes, in `data`, `tasks`, `models`,
`profiler` and `compute` for the groups) and calls `self._call(...)`, which the sync client
answers with the value and the async client with an awaitable of it. This module is the one
boundary where HTTP failures become the `core` exceptions the server raised.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable
from typing import Any

import httpx

from ..core.errors import GswarmError, InternalError, NetworkError, error_from_dict
from .compute import ComputeApi, ServicesApi
from .data import DataApi
from .discovery import discover
from .keys import KeysApi
from .models import AsyncModelsApi, ModelsApi
from .parts import COMPUTE, CONTROL, MAX_PAGE
from .profiler import AsyncProfilerApi, ProfilerApi
from .tasks import AsyncTasksApi, SyncTasksApi


class _Api:
    """Every route of the API, once. `_call` is the transport-specific part."""

    def __init__(self) -> None:
        self.data = DataApi(self)
        self.profiler = ProfilerApi(self)
        self.models = ModelsApi(self)
        self.services = ServicesApi(self)
        self.compute = ComputeApi(self)
        self.keys = KeysApi(self)

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        key: str | None = None,
        waits: bool = False,
    ) -> Any:
        raise NotImplementedError

    # -- system
    def health(self) -> Any:
        """`GET /health`: status, version, uptime, nodes online/total, scheduler."""
        return self._call("GET", CONTROL + "health")

    def metrics(self) -> Any:
        """`GET /metrics`: per node and device utilisation and memory, request counters."""
        return self._call("GET", CONTROL + "metrics")

    def nodes(self) -> Any:
        """`GET /nodes`: every node (all pages up to 500)."""
        return self._call("GET", CONTROL + "nodes", params={"per_page": MAX_PAGE}, key="nodes")

    def node(self, name: str) -> Any:
        """`GET /nodes/{name}`: one node with its devices' total/used/available bytes."""
        return self._call("GET", CONTROL + f"nodes/{name}")

    def node_resources(self, name: str) -> Any:
        return self._call("GET", CONTROL + f"nodes/{name}/resources")

    def openapi(self) -> Any:
        return self._call("GET", CONTROL + "openapi.json")

    def compute_health(self) -> Any:
        return self._call("GET", COMPUTE + "health")


class _Connection:
    """Where the server is and which credential to send: an API key (`api_key`, else
    `GSWARM_API_KEY` unless a token is given) as `Bearer gsk_...`, else the Jupyter token."""

    def __init__(self, url: str | None, token: str | None, timeout: float,
                 api_key: str | None = None) -> None:
        self.url, self.token = discover(url, token)
        if api_key is None and token is None:
            api_key = os.environ.get("GSWARM_API_KEY") or None
        self.api_key = api_key
        self.base_url = self.url.split("?", 1)[0].rstrip("/") + "/"
        self.timeout = timeout

    def _headers(self) -> dict[str, str]:
        if self.api_key:
            return {"Authorization": f"Bearer {self.api_key}"}
        return {"Authorization": f"token {self.token}"} if self.token else {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"


def _unwrap(response: httpx.Response, key: str | None) -> Any:
    """The envelope's `data` (or `data[key]`), or the server's error as its `core` exception."""
    content_type = response.headers.get("content-type", "")
    if "json" not in content_type:
        if response.is_success:
            return response.content
        raise InternalError(f"HTTP {response.status_code}: {response.text[:200]}")
    try:
        body = response.json()
    except ValueError:
        raise InternalError(f"HTTP {response.status_code}: the body is not JSON") from None
    if not isinstance(body, dict) or "success" not in body:
        if response.is_success:
            return body  # documents outside the envelope, e.g. openapi.json
        raise InternalError(f"HTTP {response.status_code}: {str(body)[:200]}")
    if not body["success"]:
        error = error_from_dict(body.get("error") or {})
        error.http_status = response.status_code  # type: ignore[attr-defined]
        raise error
    data = body.get("data")
    return data[key] if key is not None else data


RATE_LIMIT_RETRIES = 5
MAX_RETRY_WAIT = 60.0


def _retry_after(response: httpx.Response, attempt: int) -> float | None:
    """Seconds to wait before sending a rate-limited request again, or None to answer now.

    A `429` is refused before the server does anything, so any request may be sent again once
    its `Retry-After` has passed; after `RATE_LIMIT_RETRIES` the error reaches the caller.
    """
    if response.status_code != 429 or attempt >= RATE_LIMIT_RETRIES:
        return None
    try:
        return min(MAX_RETRY_WAIT, max(0.0, float(response.headers.get("Retry-After", "1"))))
    except ValueError:
        return 1.0


# How much longer than its body's `timeout` a waiting call reads: the server answers 504 then.
WAIT_MARGIN = 30.0


def _request_timeout(json: Any, timeout: float, waits: bool) -> Any:
    """The timeout of one request. A call that `waits` for long work on the server (a training,
    an optimisation) reads for as long as the server may take: its body's `timeout` (after which
    the server answers 504 REQUEST_TIMEOUT) plus `WAIT_MARGIN`, without a bound when the body
    sets none. Connecting and sending stay bounded by the client's `timeout`."""
    if not waits:
        return httpx.USE_CLIENT_DEFAULT
    bound = json.get("timeout") if isinstance(json, dict) else None
    return httpx.Timeout(timeout, read=None if bound is None else float(bound) + WAIT_MARGIN)


def _network_error(base_url: str, exc: httpx.HTTPError) -> GswarmError:
    if isinstance(exc, httpx.ReadTimeout):  # reached, but no answer in time: it may still run
        return NetworkError(f"the gswarm server at {base_url} did not answer in time ({exc}); "
                            "the request may still be running there", {"url": base_url})
    return NetworkError(f"cannot reach the gswarm server at {base_url}: {exc}", {"url": base_url})


class GswarmClient(_Api, _Connection):
    """Blocking client. `GswarmClient()` finds the server by itself (see `discover`);
    `api_key="gsk_..."` (or `GSWARM_API_KEY`) talks with an API key instead of the token."""

    def __init__(
        self, url: str | None = None, token: str | None = None, timeout: float = 60.0,
        api_key: str | None = None,
    ) -> None:
        _Api.__init__(self)
        self.tasks = SyncTasksApi(self)
        _Connection.__init__(self, url, token, timeout, api_key)
        self._http = httpx.Client(base_url=self.base_url, headers=self._headers(), timeout=timeout)

    def _call(self, method: str, path: str, *, params=None, json=None, key=None, waits=False) -> Any:  # type: ignore[no-untyped-def]
        import time

        timeout = _request_timeout(json, self.timeout, waits)
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                response = self._http.request(method, path, params=params, json=json,
                                              timeout=timeout)
            except httpx.HTTPError as exc:
                raise _network_error(self.base_url, exc) from None
            wait = _retry_after(response, attempt)
            if wait is None:
                break
            time.sleep(wait)
        return _unwrap(response, key)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GswarmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncGswarmClient(_Api, _Connection):
    """The same API as `GswarmClient`; every method answers an awaitable."""

    def __init__(
        self, url: str | None = None, token: str | None = None, timeout: float = 60.0,
        api_key: str | None = None,
    ) -> None:
        _Api.__init__(self)
        self.tasks = AsyncTasksApi(self)
        self.profiler = AsyncProfilerApi(self)
        self.models = AsyncModelsApi(self)
        _Connection.__init__(self, url, token, timeout, api_key)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=self._headers(), timeout=timeout
        )

    def _call(self, method: str, path: str, *, params=None, json=None, key=None, waits=False) -> Awaitable[Any]:  # type: ignore[no-untyped-def, override]
        return self._acall(method, path, params, json, key, waits)

    async def _acall(self, method: str, path: str, params: Any, json: Any, key: str | None,
                     waits: bool = False) -> Any:
        import asyncio

        timeout = _request_timeout(json, self.timeout, waits)
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                response = await self._http.request(method, path, params=params, json=json,
                                                    timeout=timeout)
            except httpx.HTTPError as exc:
                raise _network_error(self.base_url, exc) from None
            wait = _retry_after(response, attempt)
            if wait is None:
                break
            await asyncio.sleep(wait)
        return _unwrap(response, key)

    async def _events(self, stream: str, subscribe: dict[str, Any] | None = None) -> Any:
        """JSON events of `/ws/{stream}`, until the server closes the socket."""
        import json as _json

        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        url = self.base_url.replace("http", "ws", 1) + CONTROL + f"ws/{stream}"
        try:
            conn = await websocket_connect(HTTPRequest(url, headers=self._headers()))
        except Exception as exc:
            raise NetworkError(f"cannot open {url}: {exc}", {"url": url}) from None
        try:
            if subscribe is not None:
                await conn.write_message(_json.dumps(subscribe))
            while (message := await conn.read_message()) is not None:
                yield _json.loads(message)
        finally:
            conn.close()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncGswarmClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
