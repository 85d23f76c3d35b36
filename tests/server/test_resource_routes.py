"""Resource allocations (`/resources`) through a real Jupyter server and real Dask workers:
reserved, listed, freed; enforced where chunks are placed (others refused the reserved bytes, the
owner held to its allocation); never over-committed by concurrent requests; counted in a key's
`max_bytes`; expired by themselves (a revoked key's too) with an event on `/ws/resources`."""

from __future__ import annotations

import asyncio
import json
import time

from ..http_source import Source
from .data_helpers import b64, finished

C = "gswarm/compute/v1"
API = "gswarm/api/v1"
R = f"{C}/resources"
MIB = 2**20


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def make_key(api, name: str, **body) -> tuple[str, str]:
    status, env, _ = await api("POST", f"{API}/keys", body={"name": name, **body})
    assert status == 201, env
    return env["data"]["secret"], env["data"]["key_id"]


async def reserve(api, size: int, duration: float = 60, device: str | None = "node1:dram",
                  headers: dict[str, str] | None = None, user: str = "alice"):
    body = {"user_id": user, "memory_size": size, "compute_units": 1, "duration": duration,
            **({"device": device} if device else {})}
    return await api("POST", R, body=body, headers=headers)


async def dram_available(api, node: str = "node1") -> int:
    _, env, _ = await api("GET", f"{API}/nodes/{node}")
    return int(env["data"]["devices"]["dram"]["available"])


async def put_chunk(api, size: int, device: str, headers: dict[str, str] | None = None):
    body = {"data": b64(b"\7" * size), "device": device}
    return await api("POST", f"{API}/data", body=body, headers=headers)


async def test_reserve_list_get_free(api):
    status, env, headers = await reserve(api, MIB, device=None)
    assert status == 201, env
    alloc = env["data"]
    assert alloc["allocation_id"].startswith("alloc_")
    assert headers["Location"].endswith(f"/resources/{alloc['allocation_id']}")
    assert alloc["gpu_id"] == f"{alloc['node']}:dram"  # no GPU nor vGPU here: dram
    assert (alloc["memory_size"], alloc["compute_units"], alloc["user_id"], alloc["owner"]) == (
        MIB, 1, "alice", "alice")
    assert alloc["start_time"] < alloc["end_time"]
    status, env, _ = await api("GET", R)
    assert status == 200 and env["data"]["total"] == 1 and env["data"]["per_page"] == 20
    assert env["data"]["allocations"][0]["allocation_id"] == alloc["allocation_id"]
    status, env, _ = await api("GET", f"{R}/{alloc['allocation_id']}")
    assert status == 200 and env["data"]["gpu_id"] == alloc["gpu_id"]
    status, env, _ = await api("DELETE", f"{R}/{alloc['allocation_id']}")
    assert status == 200 and env["data"]["status"] == "freed"
    status, env, _ = await api("DELETE", f"{R}/{alloc['allocation_id']}")
    assert status == 404 and env["error"]["code"] == "NOT_FOUND"
    for bad, field in (({"memory_size": 0}, "memory_size"), ({"duration": "x"}, "duration"),
                       ({"device": "node1:disk"}, "device"), ({"gpu": 1}, "gpu")):
        body = {"user_id": "a", "memory_size": 1, "compute_units": 1, "duration": 5, **bad}
        status, env, _ = await api("POST", R, body=body)
        assert status == 400 and env["error"]["code"] == "INVALID_REQUEST", (bad, env)
        assert env["error"]["details"]["field"] == field, (bad, env)
    status, env, _ = await reserve(api, MIB, device="node7:dram")
    assert status == 404
    status, env, _ = await reserve(api, 2**50)
    assert status == 507 and env["error"]["details"]["required"] == 2**50
    assert (await api("GET", R))[1]["data"]["total"] == 0  # refusals made nothing


async def test_concurrent_requests_never_overcommit_a_device(api):
    available = await dram_available(api)
    size = available // 3 + 1  # at most two fit
    answers = await asyncio.gather(*[reserve(api, size) for _ in range(12)])
    made = [env["data"] for status, env, _ in answers if status == 201]
    refused = [env for status, env, _ in answers if status != 201]
    assert 1 <= len(made) <= 2, [a[0] for a in answers]
    assert all(e["error"]["code"] == "INSUFFICIENT_MEMORY" for e in refused)
    assert sum(a["memory_size"] for a in made) <= available
    listed = (await api("GET", R))[1]["data"]
    assert listed["total"] == len(made)


async def test_reserved_bytes_are_the_owners_alone(api):
    secret, key_id = await make_key(api, "tenant", roles=["user"])
    status, env, _ = await reserve(api, 2 * MIB, headers=bearer(secret), user="tenant")
    assert status == 201, env
    mine = env["data"]
    assert mine["owner"] == f"key:{key_id}"  # the key's own identity, whatever user_id says
    # The owner's chunks go into its allocation, and are refused past it.
    status, env, _ = await put_chunk(api, MIB, "node1:dram", bearer(secret))
    assert status == 201, env
    status, env, _ = await put_chunk(api, MIB + MIB // 2, "node1:dram", bearer(secret))
    assert status == 507 and env["error"]["code"] == "INSUFFICIENT_MEMORY", env
    usage = (await api("GET", f"{API}/keys/{key_id}/usage"))[1]["data"]
    assert usage["bytes_placed"] == 2 * MIB  # 1 MiB chunk + 1 MiB reserved, unused
    [listed] = usage["allocations"]
    assert listed["allocation_id"] == mine["allocation_id"] and listed["used_bytes"] == MIB
    # Someone else reserves all that is left; then nobody else may place a chunk there.
    status, env, _ = await reserve(api, 2**50, user="bob")
    free = env["error"]["details"]["available"]
    status, env, _ = await reserve(api, free - MIB, user="bob")
    assert status == 201, env
    theirs = env["data"]
    status, env, _ = await put_chunk(api, 4 * MIB, "node1:dram")
    assert status == 507 and env["error"]["code"] == "INSUFFICIENT_MEMORY", env
    # A key sees and frees only its own allocations.
    listed = (await api("GET", R, headers=bearer(secret)))[1]["data"]["allocations"]
    assert [a["allocation_id"] for a in listed] == [mine["allocation_id"]]
    status, env, _ = await api("DELETE", f"{R}/{theirs['allocation_id']}", headers=bearer(secret))
    assert status == 403 and env["error"]["code"] == "FORBIDDEN"
    # Freed, the bytes are everyone's again.
    assert (await api("DELETE", f"{R}/{theirs['allocation_id']}"))[0] == 200
    status, env, _ = await put_chunk(api, 4 * MIB, "node1:dram")
    assert status == 201, env


async def test_a_keys_allocations_count_in_its_max_bytes(api):
    secret, key_id = await make_key(api, "small", roles=["user"], quotas={"max_bytes": 3 * MIB})
    status, env, _ = await reserve(api, 2 * MIB, headers=bearer(secret))
    assert status == 201, env
    status, env, _ = await reserve(api, 2 * MIB, headers=bearer(secret))
    assert status == 507 and env["error"]["code"] == "INSUFFICIENT_MEMORY"
    assert env["error"]["details"] == {"quota": 3 * MIB, "used": 2 * MIB, "required": 2 * MIB}
    status, env, _ = await put_chunk(api, 2 * MIB, "node2:dram", bearer(secret))
    assert status == 507 and env["error"]["details"]["used"] == 2 * MIB
    usage = (await api("GET", f"{API}/keys/{key_id}/usage"))[1]["data"]
    assert usage["bytes_placed"] == 2 * MIB and len(usage["allocations"]) == 1
    assert (await api("GET", f"{API}/data"))[1]["data"]["total"] == 0  # nothing half-made
    # At its quota, a model of a size not known yet is refused too.
    assert (await reserve(api, MIB, headers=bearer(secret)))[0] == 201
    model = {"model_name": "late", "source_url": "builtin://mlp?in=8&hidden=16&out=4&seed=0"}
    status, env, _ = await api("POST", f"{API}/models", body=model, headers=bearer(secret))
    assert status == 507 and env["error"]["details"] == {
        "quota": 3 * MIB, "used": 3 * MIB, "required": None}
    assert (await api("GET", f"{API}/models"))[1]["data"]["total"] == 0


async def test_a_revoked_keys_allocation_expires_by_itself(api, jp_ws_fetch):
    secret, key_id = await make_key(api, "leaving", roles=["user"])
    ws = await jp_ws_fetch(*f"{API}/ws/resources".split("/"))
    try:
        status, env, _ = await reserve(api, MIB, duration=1.5, headers=bearer(secret))
        assert status == 201, env
        alloc_id = env["data"]["allocation_id"]
        assert (await api("DELETE", f"{API}/keys/{key_id}"))[0] == 200
        assert (await api("GET", R))[1]["data"]["total"] == 1  # revoked, still reserved
        changes = []
        deadline = time.monotonic() + 30
        while "expired" not in changes and time.monotonic() < deadline:
            message = await asyncio.wait_for(ws.read_message(), timeout=30)
            event = json.loads(message)
            assert event["event"] == "allocation"
            if event["data"]["allocation_id"] == alloc_id:
                changes.append(event["data"]["change"])
        assert changes == ["created", "expired"]
    finally:
        ws.close()
    assert (await api("GET", R))[1]["data"]["total"] == 0
    assert (await api("GET", f"{R}/{alloc_id}"))[0] == 404


async def test_a_service_is_not_placed_in_others_reserved_bytes(api):
    big = "builtin://mlp?in=512&hidden=1024&out=4&seed=0"  # about 2 MiB of float32 weights
    status, env, _ = await api("POST", f"{API}/models", body={"model_name": "big",
                                                             "source_url": big})
    assert status == 201, env
    service = {"model_name": "big", "device": "node1:dram"}
    status, env, _ = await reserve(api, 2**50, user="bob")
    status, env, _ = await reserve(api, env["error"]["details"]["available"] - 256 * 1024,
                                   user="bob")
    assert status == 201, env
    theirs = env["data"]
    status, env, _ = await api("POST", f"{API}/services", body=service)
    assert status == 507 and env["error"]["code"] == "INSUFFICIENT_MEMORY", env
    assert env["error"]["details"]["device"] == "node1:dram"
    assert (await api("GET", f"{API}/services"))[1]["data"]["total"] == 0
    assert (await api("DELETE", f"{R}/{theirs['allocation_id']}"))[0] == 200
    status, env, _ = await api("POST", f"{API}/services", body=service)
    assert status == 201, env
    assert (await api("DELETE", f"{API}/services/{env['data']['service_id']}"))[0] == 200


async def test_a_download_is_bounded_by_others_reserved_bytes(api):
    status, env, _ = await reserve(api, 2**50, user="bob")
    status, env, _ = await reserve(api, env["error"]["details"]["available"] - 256 * 1024,
                                   user="bob")
    assert status == 201, env
    with Source() as src:
        src.files["blob"] = b"\5" * (4 * MIB)
        status, env, _ = await api("POST", f"{API}/data",
                                   body={"url": src.url("blob"), "device": "node1:dram"})
        assert status == 201, env  # the chunk, downloading
        done = await finished(api, env["data"]["task_id"])
    assert done["status"] == "failed" and done["error"]["code"] == "INSUFFICIENT_MEMORY", done
    chunk = (await api("GET", f"{API}/data/{env['data']['chunk_id']}"))[1]["data"]
    assert chunk["locations"] == []  # nothing half-made on the device
