"""Helpers of the data pool and task queue tests."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import numpy as np

API = "gswarm/api/v1"
FINISHED = {"completed", "failed", "cancelled"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def put_tensor(api, array: np.ndarray, device: str, **extra: Any) -> dict[str, Any]:
    body = {
        "data": b64(array.tobytes()),
        "format": "tensor",
        "device": device,
        "metadata": {"shape": list(array.shape), "dtype": str(array.dtype)},
        **extra,
    }
    status, env, _ = await api("POST", f"{API}/data", body=body)
    assert status == 201, env
    return env["data"]


async def put_bytes(api, data: bytes, device: str, **extra: Any) -> dict[str, Any]:
    body = {"data": b64(data), "device": device, **extra}
    status, env, _ = await api("POST", f"{API}/data", body=body)
    assert status == 201, env
    return env["data"]


async def task(api, task_id: str) -> dict[str, Any]:
    status, env, _ = await api("GET", f"{API}/queue/tasks/{task_id}")
    assert status == 200, env
    return env["data"]


async def wait_for(check, what: str, limit: float = 60.0, every: float = 0.05):
    """Poll `check()` (async) until it answers something truthy; fail after `limit` s."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > end:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(every)


async def finished(api, task_id: str) -> dict[str, Any]:
    async def check():
        t = await task(api, task_id)
        return t if t["status"] in FINISHED else None

    return await wait_for(check, f"task {task_id} to finish")


async def running(api, task_id: str) -> dict[str, Any]:
    """The task's record once it runs (a slow copy or transfer caught mid-way)."""
    async def check():
        t = await task(api, task_id)
        return t if t["status"] == "running" else None

    return await wait_for(check, f"task {task_id} to run")


async def raw_content(jp_fetch, chunk_id: str) -> tuple[int, bytes, dict[str, str]]:
    from tornado.httpclient import HTTPClientError

    try:
        r = await jp_fetch(*f"{API}/data/{chunk_id}/content".split("/"), method="GET")
    except HTTPClientError as exc:
        r = exc.response
    return r.code, r.body, dict(r.headers)


def locations(chunk: dict[str, Any]) -> dict[str, str]:
    return {loc["device"]: loc["status"] for loc in chunk["locations"]}
