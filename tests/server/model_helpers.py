"""Helpers of the model registry route tests."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from gswarm_jupyter.cluster.storage.weight_ops import weights_checksum

API = "gswarm/api/v1"
MLP = "builtin://mlp?in=8&hidden=16&out=4&seed={seed}"
GPT = "builtin://gpt?vocab=16&d_model=8&layers=1&heads=2&context=8&seed=0"


async def register(api, name: str, source_url: str | None = None, **extra: Any) -> dict[str, Any]:
    body = {"model_name": name, "source_url": source_url or MLP.format(seed=0), **extra}
    status, env, _ = await api("POST", f"{API}/models", body=body)
    assert status == 201, env
    return env["data"]


async def model(api, name: str) -> dict[str, Any]:
    status, env, _ = await api("GET", f"{API}/models/{name}")
    assert status == 200, env
    return env["data"]


def locations(record: dict[str, Any]) -> dict[str, str]:
    return {loc["device"]: loc["status"] for loc in record["locations"]}


async def checksum_on(app, name: str, device: str) -> str:
    """sha256 of the copy's bytes, computed on the node that holds it."""
    runtime = app.context.runtime
    node, _, dev = device.rpartition(":")
    future = runtime.client.submit(weights_checksum, name, dev, pure=False,
                                   workers=[runtime.nodes.get(node).address])
    try:
        return await future
    finally:
        future.release()


def store_of(app, node: str) -> Path:
    return Path(app.context.runtime.nodes.get(node).report["store"]) / "models"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
