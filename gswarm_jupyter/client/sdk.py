"""`GswarmClient` and `AsyncGswarmClient`: the same API, over a sync or an async httpx client.

Each API method is written once in `_Api` and calls `self._call(...)`, which the sync client
answers with the value and the async client with an awaitable of it. This module is the one
boundary where HTTP failures become the `core` exceptions the server raised.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import httpx

from ..core.errors import (
    GswarmError,
    InternalError,
    NetworkError,
    RequestTimeout,
    error_from_dict,
)
from .discovery import discover

T = TypeVar("T")

CONTROL = "gswarm/api/v1/"
COMPUTE = "gswarm/compute/v1/"
PROFILER = CONTROL + "profiler/"
MAX_PAGE = 500


def _clean(**params: Any) -> dict[str, Any]:
    """Query or body fields without the ones left unset."""
    return {k: v for k, v in params.items() if v is not None}


def _seg(text: str) -> str:
    """One URL path segment (a model name or device, e.g. `node1:dram`), escaped."""
    from urllib.parse import quote

    return quote(text, safe=":")


class _Part:
    """A group of routes (`client.data`, `client.tasks`, ...) sharing its client's transport."""

    def __init__(self, client: _Api) -> None:
        self._client = client

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._client._call(method, path, **kwargs)


class DataApi(_Part):
    """The data pool: chunks of bytes or tensors stored on nodes."""

    def list(self, device: str | None = None, type: str | None = None, node: str | None = None,
             page: int = 1, per_page: int = MAX_PAGE) -> Any:
        params = _clean(device=device, type=type, node=node, page=page, per_page=per_page)
        return self._call("GET", CONTROL + "data", params=params, key="chunks")

    def put(self, device: str, *, data: bytes | None = None, url: str | None = None,
            format: str = "bytes", type: str = "input", shape: list[int] | None = None,
            dtype: str | None = None) -> Any:
        """Store bytes (sent base64) or a URL's content on `device` (e.g. `node1:dram`)."""
        import base64

        body = _clean(
            device=device, url=url, format=format, type=type,
            data=None if data is None else base64.b64encode(data).decode("ascii"),
            metadata=_clean(shape=shape, dtype=dtype),
        )
        return self._call("POST", CONTROL + "data", json=body)

    def put_array(self, device: str, array: Any, type: str = "input") -> Any:
        """Store a numpy array as a tensor chunk."""
        import numpy as np

        array = np.ascontiguousarray(array)
        return self.put(device, data=array.tobytes(), format="tensor", type=type,
                        shape=list(array.shape), dtype=str(array.dtype))

    def get(self, chunk_id: str) -> Any:
        return self._call("GET", CONTROL + f"data/{chunk_id}")

    def content(self, chunk_id: str) -> Any:
        """The chunk's bytes, exactly as stored."""
        return self._call("GET", CONTROL + f"data/{chunk_id}/content")

    def get_array(self, chunk_id: str) -> Any:
        """A tensor chunk's content as a numpy array of its shape and dtype."""
        import numpy as np

        meta = self.get(chunk_id)["metadata"]
        flat = np.frombuffer(self.content(chunk_id), dtype=np.dtype(meta["dtype"]))
        return flat.reshape(meta["shape"])

    def move(self, chunk_id: str, target_device: str, priority: str | None = None,
             bandwidth_limit: int | None = None, dependencies: list[str] | None = None) -> Any:
        """Queue a copy to another device of the same node; answers the task."""
        body = _clean(target_device=target_device, priority=priority,
                      bandwidth_limit=bandwidth_limit, dependencies=dependencies)
        return self._call("POST", CONTROL + f"data/{chunk_id}/move", json=body)

    def transfer(self, chunk_id: str, target_node: str, target_device: str,
                 delete_source: bool = False, priority: str | None = None,
                 bandwidth_limit: int | None = None, dependencies: list[str] | None = None) -> Any:
        """Queue a copy to another node (`bandwidth_limit` in bytes/s); answers the task."""
        body = _clean(target_node=target_node, target_device=target_device,
                      delete_source=delete_source, priority=priority,
                      bandwidth_limit=bandwidth_limit, dependencies=dependencies)
        return self._call("POST", CONTROL + f"data/{chunk_id}/transfer", json=body)

    def delete(self, chunk_id: str, force: bool = False) -> Any:
        params = {"force": "true"} if force else None
        return self._call("DELETE", CONTROL + f"data/{chunk_id}", params=params)


class TasksApi(_Part):
    """The task queue. `wait` is the client's own (blocking or awaitable)."""

    def queue(self) -> Any:
        return self._call("GET", CONTROL + "queue")

    def list(self, status: str | None = None, type: str | None = None, limit: int | None = None) -> Any:
        params = _clean(status=status, type=type, limit=limit)
        return self._call("GET", CONTROL + "queue/tasks", params=params, key="tasks")

    def get(self, task_id: str) -> Any:
        return self._call("GET", CONTROL + f"queue/tasks/{task_id}")

    def cancel(self, task_id: str) -> Any:
        return self._call("POST", CONTROL + f"queue/tasks/{task_id}/cancel")

    def history(self, status: str | None = None, since: float | str | None = None,
                limit: int | None = None) -> Any:
        params = _clean(status=status, since=since, limit=limit)
        return self._call("GET", CONTROL + "queue/history", params=params, key="tasks")


class ProfilerApi(_Part):
    """The profiler: named sessions of frames sampled on the nodes, their reports and exports."""

    def status(self) -> Any:
        return self._call("GET", PROFILER + "status")

    def start(self, name: str, sampling_frequency_ms: int | None = None,
              nodes: list[str] | None = None, metrics: list[str] | None = None,
              tags: dict[str, Any] | None = None) -> Any:
        """Start recording session `name` (every node and metric by default); answers its record."""
        body = _clean(name=name, sampling_frequency_ms=sampling_frequency_ms, nodes=nodes,
                      metrics=metrics, tags=tags)
        return self._call("POST", PROFILER + "profiling/start", json=body)

    def stop(self, name: str) -> Any:
        """Stop `name`; answers its record with `summary` {node: {device: {metric: stats}}}."""
        return self._call("POST", PROFILER + "profiling/stop", json={"name": name})

    def sessions(self) -> Any:
        """Every session, running and finished (up to 500)."""
        return self._call("GET", PROFILER + "profiling/sessions", params={"per_page": MAX_PAGE},
                          key="sessions")

    def session(self, name: str) -> Any:
        """One session's record, summary and frames."""
        return self._call("GET", PROFILER + f"profiling/sessions/{name}")

    def frames(self, name: str) -> Any:
        """The frames a session recorded, oldest first."""
        return self._call("GET", PROFILER + f"profiling/sessions/{name}", key="frames")

    def csv(self, name: str) -> Any:
        """The session's frames as CSV bytes (one row per frame and device)."""
        return self._call("GET", PROFILER + f"profiling/sessions/{name}", params={"format": "csv"})

    def plot_png(self, name: str, metrics: list[str] | None = None) -> Any:
        """A matplotlib plot of the session as PNG bytes (of `metrics`, or the server's choice)."""
        params = _clean(format="png", metrics=",".join(metrics) if metrics else None)
        return self._call("GET", PROFILER + f"profiling/sessions/{name}", params=params)

    def clients(self) -> Any:
        """Every sampler the server hears from: Dask nodes' and external agents'."""
        return self._call("GET", PROFILER + "clients", params={"per_page": MAX_PAGE}, key="clients")

    def latest(self, nodes: list[str] | None = None, metrics: list[str] | None = None) -> Any:
        """The latest frame of every client (or of `nodes`), with only `metrics` if given."""
        params = _clean(nodes=",".join(nodes) if nodes else None,
                        metrics=",".join(metrics) if metrics else None)
        return self._call("GET", PROFILER + "metrics/latest", params=params, key="frames")


class AsyncProfilerApi(ProfilerApi):
    async def events(self, sessions: list[str] | None = None, nodes: list[str] | None = None,
                     metrics: list[str] | None = None) -> Any:
        """Frames as they arrive: an async iterator over `/ws/profiling` events
        (`{"event": "frame", "data": frame}`), filtered when any filter is given."""
        wanted = _clean(sessions=sessions, nodes=nodes, metrics=metrics)
        async for event in self._client._events("profiling", wanted or None):  # type: ignore[attr-defined]
            yield event


class ModelsApi(_Part):
    """The model registry and placement: models, their copies on devices, and the tasks that move
    them. Task-starting calls answer the task (wait with `client.tasks.wait`)."""

    def list(self, type: str | None = None, location: str | None = None,
             status: str | None = None, page: int = 1, per_page: int = MAX_PAGE) -> Any:
        params = _clean(type=type, location=location, status=status, page=page, per_page=per_page)
        return self._call("GET", CONTROL + "models", params=params, key="models")

    def register(self, name: str, source_url: str, model_type: str | None = None,
                 metadata: dict[str, Any] | None = None, download_to: str | None = None,
                 checksum: str | None = None, priority: str | None = None) -> Any:
        """Register from builtin://, file:// or http(s)://; an http source answers the model
        `downloading` with the download's `task_id`."""
        body = _clean(model_name=name, source_url=source_url, model_type=model_type,
                      metadata=metadata, download_to=download_to, checksum=checksum,
                      priority=priority)
        return self._call("POST", CONTROL + "models", json=body)

    def get(self, name: str) -> Any:
        return self._call("GET", CONTROL + f"models/{_seg(name)}")

    def delete(self, name: str, device: str | None = None, force: bool = False) -> Any:
        """Remove the model and every copy, or with `device` that one copy."""
        params = _clean(device=device, force="true" if force else None)
        return self._call("DELETE", CONTROL + f"models/{_seg(name)}", params=params or None)

    def locations(self, name: str) -> Any:
        return self._call("GET", CONTROL + f"models/{_seg(name)}/locations", key="locations")

    def add_location(self, name: str, device: str, priority: str | None = None) -> Any:
        """Queue a copy on `device` from the best existing copy; answers the task."""
        body = _clean(device=device, priority=priority)
        return self._call("POST", CONTROL + f"models/{_seg(name)}/locations", json=body)

    def drop_location(self, name: str, device: str, force: bool = False) -> Any:
        params = {"force": "true"} if force else None
        return self._call("DELETE", CONTROL + f"models/{_seg(name)}/locations/{_seg(device)}",
                          params=params)

    def download(self, name: str, target_device: str, source_url: str | None = None,
                 checksum: str | None = None, priority: str | None = None) -> Any:
        body = _clean(target_device=target_device, source_url=source_url, checksum=checksum,
                      priority=priority)
        return self._call("POST", CONTROL + f"models/{_seg(name)}/download", json=body)

    def move(self, name: str, source_device: str, target_device: str, keep_source: bool = False,
             priority: str | None = None, bandwidth_limit: int | None = None) -> Any:
        body = _clean(source_device=source_device, target_device=target_device,
                      keep_source=keep_source, priority=priority, bandwidth_limit=bandwidth_limit)
        return self._call("POST", CONTROL + f"models/{_seg(name)}/move", json=body)

    def copy(self, name: str, source_device: str, target_device: str,
             bandwidth_limit: int | None = None, priority: str | None = None) -> Any:
        """Queue a worker-to-worker copy (`bandwidth_limit` in bytes/s); answers the task."""
        body = _clean(source_device=source_device, target_device=target_device,
                      bandwidth_limit=bandwidth_limit, priority=priority)
        return self._call("POST", CONTROL + f"models/{_seg(name)}/copy", json=body)

    def node_models(self, node: str) -> Any:
        """The models with a copy on `node`, one row per copy."""
        return self._call("GET", CONTROL + f"nodes/{_seg(node)}/models", key="models")


class AsyncModelsApi(ModelsApi):
    async def events(self) -> Any:
        """Registry and location changes as they happen: an async iterator over `/ws/models`
        events (`{"event": "model", "data": {"model_name", "change", ...}}`)."""
        async for event in self._client._events("models"):  # type: ignore[attr-defined]
            yield event


class ServicesApi(_Part):
    """Services: a model loaded on a device of a node, batched, answering through the compute
    plane. `status` adds request counters, queue depth, p50/p99 latency (s) and batch sizes."""

    def list(self, model_name: str | None = None, status: str | None = None) -> Any:
        params = _clean(model_name=model_name, status=status, per_page=MAX_PAGE)
        return self._call("GET", CONTROL + "services", params=params, key="services")

    def start(self, model_name: str, nodes: list[str] | None = None, device: str | None = None,
              config: dict[str, Any] | None = None) -> Any:
        """Start a service (`config`: replicas, load_balancing, max_batch_size, batch_timeout_ms,
        timeout, framework); answers its record once it can answer inference."""
        body = _clean(model_name=model_name, nodes=nodes, device=device, config=config)
        return self._call("POST", CONTROL + "services", json=body)

    def get(self, service_id: str) -> Any:
        return self._call("GET", CONTROL + f"services/{_seg(service_id)}")

    def status(self, service_id: str) -> Any:
        return self._call("GET", CONTROL + f"services/{_seg(service_id)}/status")

    def stop(self, service_id: str) -> Any:
        """Drain, stop and free its device memory."""
        return self._call("DELETE", CONTROL + f"services/{_seg(service_id)}")


_OPTIONS = ("temperature", "top_p", "max_tokens", "seed")


def _inference_body(model_id: str, input_data: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """An inference request: generation options (`temperature`, `top_p`, `max_tokens`, `seed`) go
    under `options`, the other fields (`session_id`, `timeout`, `service_id`, ...) at the top."""
    options = _clean(**{k: fields.pop(k, None) for k in _OPTIONS})
    options.update(fields.pop("options", None) or {})
    return {"model_id": model_id, "input_data": input_data, **_clean(**fields),
            **({"options": options} if options else {})}


class ComputeApi(_Part):
    """The compute plane: load models, run inference (sync, async, batch), sessions, metrics."""

    def health(self) -> Any:
        return self._call("GET", COMPUTE + "health")

    def load(self, model_id: str, model_path: str | None = None, **fields: Any) -> Any:
        """Register `model_path` if given (builtin://, file://, http(s):// or a path) and start a
        service. `fields`: framework, device, nodes, replicas, max_batch_size, batch_timeout_ms,
        timeout, ... as in API.md."""
        body = _clean(model_id=model_id, model_path=model_path, **fields)
        return self._call("POST", COMPUTE + "models", json=body)

    def loaded(self) -> Any:
        return self._call("GET", COMPUTE + "models", key="models")

    def unload(self, model_id: str) -> Any:
        return self._call("DELETE", COMPUTE + f"models/{_seg(model_id)}")

    def infer(self, model_id: str, input_data: Any, **options: Any) -> Any:
        """Rows in, rows out (or token rows in, generated tokens out)."""
        return self._call("POST", COMPUTE + "inference",
                          json=_inference_body(model_id, input_data, options))

    def infer_async(self, model_id: str, input_data: Any, **options: Any) -> Any:
        """Queue it (a task; `priority` allowed); answers `{request_id, status: queued, ...}`."""
        return self._call("POST", COMPUTE + "inference/async",
                          json=_inference_body(model_id, input_data, options))

    def inference(self, request_id: str) -> Any:
        """An async inference's status, and its output once completed."""
        return self._call("GET", COMPUTE + f"inference/{_seg(request_id)}")

    def infer_batch(self, requests: list[dict[str, Any]]) -> Any:
        """Several request bodies at once; each succeeds or fails on its own."""
        return self._call("POST", COMPUTE + "inference/batch", json={"requests": requests})

    def session_start(self, user_id: str, model_id: str, ttl_seconds: float | None = None) -> Any:
        body = _clean(user_id=user_id, model_id=model_id, ttl_seconds=ttl_seconds)
        return self._call("POST", COMPUTE + "sessions", json=body)

    def session_end(self, session_id: str) -> Any:
        return self._call("DELETE", COMPUTE + f"sessions/{_seg(session_id)}")

    def metrics(self) -> Any:
        """Throughput, latency and request counters over the sliding window, device memory."""
        return self._call("GET", COMPUTE + "metrics", key="metrics")

    def metrics_history(self, start_time: float | str | None = None,
                        end_time: float | str | None = None, interval: float | None = None) -> Any:
        params = _clean(start_time=start_time, end_time=end_time, interval=interval)
        return self._call("GET", COMPUTE + "metrics/history", params=params or None)


FINISHED = ("completed", "failed", "cancelled")


class _Api:
    """Every route of the API, once. `_call` is the transport-specific part."""

    def __init__(self) -> None:
        self.data = DataApi(self)
        self.profiler = ProfilerApi(self)
        self.models = ModelsApi(self)
        self.services = ServicesApi(self)
        self.compute = ComputeApi(self)

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        key: str | None = None,
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
    def __init__(self, url: str | None, token: str | None, timeout: float) -> None:
        self.url, self.token = discover(url, token)
        self.base_url = self.url.split("?", 1)[0].rstrip("/") + "/"
        self.timeout = timeout

    def _headers(self) -> dict[str, str]:
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


def _network_error(base_url: str, exc: httpx.HTTPError) -> GswarmError:
    return NetworkError(f"cannot reach the gswarm server at {base_url}: {exc}", {"url": base_url})


class SyncTasksApi(TasksApi):
    def wait(self, task_id: str, timeout: float | None = None, poll: float = 0.2,
             progress: Any = None) -> Any:
        """Block until the task ends; answer its record. `progress(task)` sees each poll."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            task = self.get(task_id)
            if progress is not None:
                progress(task)
            if task["status"] in FINISHED:
                return task
            if deadline is not None and time.monotonic() > deadline:
                raise RequestTimeout(f"task {task_id} still {task['status']} after {timeout} s",
                                     {"task_id": task_id})
            time.sleep(poll)


class AsyncTasksApi(TasksApi):
    async def wait(self, task_id: str, timeout: float | None = None, poll: float = 0.2) -> Any:
        """Until the task ends; answer its record."""
        import asyncio

        async def ended() -> Any:
            while (task := await self.get(task_id))["status"] not in FINISHED:
                await asyncio.sleep(poll)
            return task

        try:
            return await asyncio.wait_for(ended(), timeout)
        except asyncio.TimeoutError:
            raise RequestTimeout(f"task {task_id} did not end within {timeout} s",
                                 {"task_id": task_id}) from None

    async def events(self) -> Any:
        """Every task change as it happens: an async iterator over `/ws/tasks` events."""
        async for event in self._client._events("tasks"):  # type: ignore[attr-defined]
            yield event


class GswarmClient(_Api, _Connection):
    """Blocking client. `GswarmClient()` finds the server by itself (see `discover`)."""

    def __init__(
        self, url: str | None = None, token: str | None = None, timeout: float = 60.0
    ) -> None:
        _Api.__init__(self)
        self.tasks = SyncTasksApi(self)
        _Connection.__init__(self, url, token, timeout)
        self._http = httpx.Client(base_url=self.base_url, headers=self._headers(), timeout=timeout)

    def _call(self, method: str, path: str, *, params=None, json=None, key=None) -> Any:  # type: ignore[no-untyped-def]
        try:
            response = self._http.request(method, path, params=params, json=json)
        except httpx.HTTPError as exc:
            raise _network_error(self.base_url, exc) from None
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
        self, url: str | None = None, token: str | None = None, timeout: float = 60.0
    ) -> None:
        _Api.__init__(self)
        self.tasks = AsyncTasksApi(self)
        self.profiler = AsyncProfilerApi(self)
        self.models = AsyncModelsApi(self)
        _Connection.__init__(self, url, token, timeout)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=self._headers(), timeout=timeout
        )

    def _call(self, method: str, path: str, *, params=None, json=None, key=None) -> Awaitable[Any]:  # type: ignore[no-untyped-def, override]
        return self._acall(method, path, params, json, key)

    async def _acall(self, method: str, path: str, params: Any, json: Any, key: str | None) -> Any:
        try:
            response = await self._http.request(method, path, params=params, json=json)
        except httpx.HTTPError as exc:
            raise _network_error(self.base_url, exc) from None
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
