"""Removals that race in the server's event loop (a real server over a real threaded Dask cluster):
the last ready copy of a model survives concurrent drops and evictions, and a chunk deleted twice
at once is deleted once."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from .data_helpers import finished, put_bytes, running
from .model_helpers import API, MLP, checksum_on, locations, model, register, store_of

SMALL = 1296  # bytes of a tiny mlp file (MLP)
BIG = "builtin://mlp?in=8&hidden=32&out=4&seed=9"  # 2128 bytes


async def copy(api, name: str, source: str, target: str, **extra) -> tuple[int, dict]:
    status, env, _ = await api("POST", f"{API}/models/{name}/copy",
                               body={"source_device": source, "target_device": target, **extra})
    return status, env


async def copied(api, name: str, source: str, target: str) -> None:
    status, env = await copy(api, name, source, target)
    assert status == 202, env
    assert (await finished(api, env["data"]["task_id"]))["status"] == "completed"


def ready(record: dict) -> list[str]:
    return [device for device, status in locations(record).items() if status == "ready"]


async def test_concurrent_drops_of_the_last_two_copies_keep_one(api, gswarm_app):
    await register(api, "m", MLP.format(seed=0))
    await copied(api, "m", "node1:disk", "node2:disk")
    status, env = await copy(api, "m", "node1:disk", "node2:dram", bandwidth_limit=100)
    assert status == 202, env
    slow = env["data"]["task_id"]

    await running(api, slow)
    # node1:disk is read by the running copy (force cancels it); node2:disk is free to drop.
    (s1, e1, _), (s2, e2, _) = await asyncio.gather(
        api("DELETE", f"{API}/models/m/locations/node1:disk", params={"force": "true"}),
        api("DELETE", f"{API}/models/m/locations/node2:disk"),
    )
    assert sorted([s1, s2]) == [200, 409], (e1, e2)
    refused = e1 if s1 == 409 else e2
    assert refused["error"]["code"] == "CONFLICT"
    kept, dropped = ("node2", "node1") if s1 == 200 else ("node1", "node2")

    with contextlib.suppress(Exception):
        await api("POST", f"{API}/queue/tasks/{slow}/cancel")
    await finished(api, slow)
    rec = await model(api, "m")
    assert f"{kept}:disk" in ready(rec)
    assert await checksum_on(gswarm_app, "m", f"{kept}:disk") == rec["checksum"]
    assert (store_of(gswarm_app, kept) / "m" / "v1.safetensors").is_file()
    assert not list((store_of(gswarm_app, dropped) / "m").glob("v*"))


@pytest.fixture
def gswarm_config(gswarm_config, request):
    """`model_capacity` from the test's param, if any."""
    if hasattr(request, "param"):
        gswarm_config["model_capacity"] = request.param
    return gswarm_config


# node1:dram holds two small copies and 200 bytes more; the big model needs both evicted.
@pytest.mark.parametrize("gswarm_config", [{"node1:dram": 2 * SMALL + 200}], indirect=True)
async def test_eviction_racing_a_drop_never_takes_the_last_copy(api, gswarm_app):
    await register(api, "old", MLP.format(seed=1), download_to="node2:disk")
    await copied(api, "old", "node2:disk", "node1:dram")  # least recently used: evicted first
    await register(api, "x", MLP.format(seed=2), download_to="node1:dram")
    await copied(api, "x", "node1:dram", "node2:dram")  # x: two copies, one of them in dram
    await register(api, "big", BIG, download_to="node2:disk")

    # The eviction drops old's copy first; the drop of x's other copy lands while it waits.
    (copy_status, copy_env), (drop_status, drop_env, _) = await asyncio.gather(
        copy(api, "big", "node2:disk", "node1:dram", evict=True),
        api("DELETE", f"{API}/models/x/locations/node2:dram"),
    )
    assert (copy_status, drop_status) in {(202, 409), (507, 200)}, (copy_env, drop_env)
    if copy_status == 202:
        assert drop_env["error"]["code"] == "CONFLICT"
        assert (await finished(api, copy_env["data"]["task_id"]))["status"] == "completed"
        assert ready(await model(api, "x")) == ["node2:dram"]
    else:
        assert copy_env["error"]["code"] == "INSUFFICIENT_MEMORY"
        assert ready(await model(api, "x")) == ["node1:dram"]
    x = await model(api, "x")
    assert await checksum_on(gswarm_app, "x", ready(x)[0]) == x["checksum"]


async def test_concurrent_forced_deletes_of_a_chunk_delete_it_once(api, gswarm_app):
    data = bytes(range(256)) * 4096  # 1 MiB
    chunk = (await put_bytes(api, data, "node1:disk"))["chunk_id"]
    status, env, _ = await api("POST", f"{API}/data/{chunk}/transfer",
                               body={"target_node": "node2", "target_device": "dram",
                                     "bandwidth_limit": 64 * 1024})
    assert status == 202, env
    slow = env["data"]["task_id"]

    await running(api, slow)
    (s1, e1, _), (s2, e2, _) = await asyncio.gather(
        api("DELETE", f"{API}/data/{chunk}", params={"force": "true"}),
        api("DELETE", f"{API}/data/{chunk}", params={"force": "true"}),
    )
    assert sorted([s1, s2]) == [200, 404], (e1, e2)
    assert (e1 if s1 == 404 else e2)["error"]["code"] == "NOT_FOUND"
    assert (await finished(api, slow))["status"] == "cancelled"
    status, _, _ = await api("GET", f"{API}/data/{chunk}")
    assert status == 404
