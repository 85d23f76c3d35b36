"""Virtual GPUs through a real server: carved from host memory (backing cpu), shown as a device of
their node, holding chunks, model copies and services up to their quota (507 past it), sharing the
node's batches through the fair-queue gate, and destroyed (409 while used, unless force)."""

from __future__ import annotations

import pytest

from gswarm_jupyter.backends import devices
from gswarm_jupyter.cluster.tenancy.wfq import gate_for

from .data_helpers import b64, put_bytes
from .model_helpers import register

C = "gswarm/compute/v1"
API = "gswarm/api/v1"
V = f"{C}/virtualization/gpus"
MIB = 2**20


@pytest.fixture
def gswarm_config(gswarm_config):
    return {**gswarm_config, "local_nodes": 1}


async def carve(api, name: str, size: int, units: int = 1, **extra) -> dict:
    body = {"virtual_gpu_id": name, "memory_size": size, "compute_units": units, **extra}
    status, env, headers = await api("POST", V, body=body)
    assert status == 201, env
    assert headers["Location"].endswith(f"/virtualization/gpus/{name}")
    return env["data"]


async def test_carve_show_fill_refuse_and_destroy(api):
    a = await carve(api, "small", 2 * MIB, 1)
    assert (a["node"], a["device"], a["backing"], a["physical_gpu_id"]) == (
        "node1", "vgpu0", "cpu", "node1:dram")
    assert (a["memory_size"], a["memory_used"], a["status"]) == (2 * MIB, 0, "active")
    assert devices._bound["vgpu0"] == "cpu"  # in-process worker: told what vgpu0 is
    status, env, _ = await api("POST", V, body={"virtual_gpu_id": "small", "memory_size": 1,
                                                  "compute_units": 1})
    assert status == 409 and env["error"]["code"] == "CONFLICT"
    status, env, _ = await api("POST", V, body={"virtual_gpu_id": "huge", "memory_size": 2**50,
                                                  "compute_units": 1})
    assert status == 507 and env["error"]["code"] == "INSUFFICIENT_MEMORY", env
    assert env["error"]["details"]["device"] == "node1:dram"
    assert env["error"]["details"]["required"] == 2**50
    status, env, _ = await api("POST", V, body={"virtual_gpu_id": "x", "memory_size": 1,
                                                  "compute_units": 1, "scheduling_policy": "lottery"})
    assert status == 400 and env["error"]["code"] == "INVALID_REQUEST"

    _, env, _ = await api("GET", f"{API}/nodes/node1")
    node = env["data"]
    assert node["devices"]["vgpu0"] == {"total": 2 * MIB, "used": 0, "available": 2 * MIB}
    assert [v["virtual_gpu_id"] for v in node["capabilities"]["vgpus"]] == ["small"]

    chunk = await put_bytes(api, b"\1" * MIB, "node1:vgpu0")
    _, env, _ = await api("GET", f"{V}/small")
    assert env["data"]["memory_used"] == MIB
    status, env, _ = await api("POST", f"{API}/data",
                               body={"data": b64(b"\2" * (MIB + 1)), "device": "node1:vgpu0"})
    assert status == 507 and env["error"]["code"] == "INSUFFICIENT_MEMORY", env
    assert env["error"]["details"]["device"] == "node1:vgpu0"
    assert env["error"]["details"]["available"] == MIB

    status, env, _ = await api("DELETE", f"{V}/small")
    assert status == 409 and env["error"]["details"]["chunks"] == [chunk["chunk_id"]]
    status, env, _ = await api("DELETE", f"{V}/small", params={"force": "true"})
    assert status == 409 and env["error"]["details"]["last_copies"]  # never loses the only copy
    await api("DELETE", f"{API}/data/{chunk['chunk_id']}")
    _, env, _ = await api("GET", f"{V}/small")
    assert env["data"]["memory_used"] == 0  # freed when the chunk went
    status, env, _ = await api("DELETE", f"{V}/small")
    assert status == 200 and env["data"]["deleted"] is True
    assert "vgpu0" not in devices._bound
    status, env, _ = await api("GET", f"{V}/small")
    assert status == 404 and env["error"]["code"] == "NOT_FOUND"
    _, env, _ = await api("GET", f"{API}/nodes/node1")
    assert "vgpu0" not in env["data"]["devices"]


async def test_two_services_on_two_vgpus_answer_and_force_removes_them(api):
    await carve(api, "one", 64 * MIB, 1)
    await carve(api, "three", 64 * MIB, 3)
    _, env, _ = await api("GET", V)
    assert [(v["virtual_gpu_id"], v["device"]) for v in env["data"]["vgpus"]] == [
        ("one", "vgpu0"), ("three", "vgpu1")]
    services = {}
    for name, device in (("va", "node1:vgpu0"), ("vb", "node1:vgpu1")):
        await register(api, name)
        status, env, _ = await api("POST", f"{API}/services",
                                   body={"model_name": name, "device": device})
        assert status == 201, env
        services[name] = env["data"]["service_id"]
    gate = gate_for("node1:dram")  # in-process workers: the node's gate is in this process
    before = dict(gate.granted)
    for name in ("va", "vb"):
        status, env, _ = await api("POST", f"{C}/inference",
                                   body={"model_id": name, "input_data": [[0.5] * 8]})
        assert status == 200, env
        assert len(env["data"]["output_data"][0]) == 4
    assert gate.granted.get("one", 0) > before.get("one", 0)
    assert gate.granted.get("three", 0) > before.get("three", 0)
    _, env, _ = await api("GET", f"{V}/three")
    assert env["data"]["memory_used"] > 0  # the service's model copy on it

    status, env, _ = await api("DELETE", f"{V}/three")
    assert status == 409 and env["error"]["details"]["services"] == [services["vb"]]
    status, env, _ = await api("DELETE", f"{V}/three", params={"force": "true"})
    assert status == 200, env
    assert env["data"]["removed"]["services"] == [services["vb"]]
    assert env["data"]["removed"]["models"] == ["vb"]
    _, env, _ = await api("GET", f"{API}/models/vb")
    assert all(not loc["device"].endswith("vgpu1") for loc in env["data"]["locations"])
