"""Model registry and placement routes over a real server and a real (threaded) Dask cluster."""

from __future__ import annotations

import asyncio
import io
import json
import re

import pytest
from tornado.httpclient import HTTPClientError

from gswarm_kernels import init_params, save_checkpoint

from ..http_source import Source
from .data_helpers import finished, running
from .model_helpers import (
    API,
    GPT,
    MLP,
    checksum_on,
    locations,
    model,
    register,
    sha256,
    store_of,
)


@pytest.fixture
def gswarm_config(gswarm_config, tmp_path, request):
    """file:// sources under tmp_path/models; `model_capacity` from the test's param, if any."""
    (tmp_path / "models").mkdir()
    gswarm_config["model_roots"] = [str(tmp_path / "models")]
    if hasattr(request, "param"):
        gswarm_config["model_capacity"] = request.param
    return gswarm_config


async def test_register_builtin_get_list_and_bad_input(api, gswarm_app):
    status, env, headers = await api("POST", f"{API}/models",
                                     body={"model_name": "mlp-a", "source_url": MLP.format(seed=0)})
    assert status == 201, env
    rec = env["data"]
    assert headers["Location"].endswith(f"{API}/models/mlp-a")
    assert rec["model_type"] == "mlp" and rec["status"] == "ready" and rec["version"] == 1
    assert rec["format"] == "safetensors" and re.fullmatch(r"[0-9a-f]{64}", rec["checksum"])
    assert locations(rec) == {"node1:disk": "ready"}
    assert rec["metadata"]["arch"] == "mlp" and rec["metadata"]["config"]["hidden"] == [16]
    on_disk = (store_of(gswarm_app, "node1") / "mlp-a" / "v1.safetensors").read_bytes()
    assert rec["model_size"] == len(on_disk) and rec["checksum"] == sha256(on_disk)

    gpt = await register(api, "gpt-b", GPT, download_to="node2:dram", metadata={"team": "x"})
    assert gpt["model_type"] == "gpt" and locations(gpt) == {"node2:dram": "ready"}
    assert gpt["metadata"]["team"] == "x"
    assert await checksum_on(gswarm_app, "gpt-b", "node2:dram") == gpt["checksum"]

    bad = [
        ({"model_name": "mlp-a", "source_url": MLP.format(seed=1)}, 409, "CONFLICT"),
        ({"model_name": "-bad", "source_url": MLP.format(seed=0)}, 400, "INVALID_REQUEST"),
        ({"model_name": "m" * 129, "source_url": MLP.format(seed=0)}, 400, "INVALID_REQUEST"),
        ({"model_name": "c", "source_url": "ftp://host/m.bin"}, 400, "INVALID_REQUEST"),
        ({"model_name": "c", "source_url": "builtin://mlp?in=0"}, 400, "INVALID_REQUEST"),
        ({"model_name": "c", "source_url": "builtin://resnet"}, 400, "INVALID_REQUEST"),
        ({"model_name": "c", "source_url": MLP.format(seed=0), "model_type": "gpt"}, 400,
         "INVALID_REQUEST"),
        ({"model_name": "c", "source_url": MLP.format(seed=0), "download_to": "node9:disk"}, 404,
         "NOT_FOUND"),
        ({"model_name": "c", "source_url": MLP.format(seed=0), "download_to": "node1:gpu0"}, 404,
         "NOT_FOUND"),
        ({"model_name": "c", "source_url": MLP.format(seed=0), "download_to": "dram"}, 400,
         "INVALID_REQUEST"),
        ({"model_name": "c", "source_url": MLP.format(seed=0), "colour": "red"}, 400,
         "INVALID_REQUEST"),
        ({"source_url": MLP.format(seed=0)}, 400, "INVALID_REQUEST"),
        # found by tests/fuzz: a checksum the bytes do not match was a 500 TASK_FAILED
        ({"model_name": "c", "source_url": MLP.format(seed=0), "checksum": "0" * 64}, 400,
         "INVALID_REQUEST"),
    ]
    for body, code, error in bad:
        status, env, _ = await api("POST", f"{API}/models", body=body)
        assert (status, env["error"]["code"]) == (code, error), (body, env)
    status, env, _ = await api("GET", f"{API}/models/c")
    assert status == 404 and env["error"]["code"] == "MODEL_NOT_FOUND"

    async def names(**params):
        status, env, _ = await api("GET", f"{API}/models", params=params)
        assert status == 200, env
        return [m["model_name"] for m in env["data"]["models"]]

    assert await names() == ["mlp-a", "gpt-b"]
    assert await names(type="gpt") == ["gpt-b"]
    assert await names(location="dram") == ["gpt-b"]
    assert await names(location="node1:disk") == ["mlp-a"]
    assert await names(status="ready") == ["mlp-a", "gpt-b"]
    assert await names(status="failed") == []
    assert await names(per_page=1, page=2) == ["gpt-b"]
    for params in ({"page": 0}, {"per_page": 501}, {"per_page": "x"}, {"colour": "red"}):
        status, env, _ = await api("GET", f"{API}/models", params=params)
        assert status == 400 and env["error"]["code"] == "INVALID_REQUEST", params

    status, env, _ = await api("GET", f"{API}/nodes/node2/models")
    assert status == 200 and [(m["model_name"], m["device"], m["status"])
                              for m in env["data"]["models"]] == [("gpt-b", "dram", "ready")]
    status, env, _ = await api("GET", f"{API}/nodes/node9/models")
    assert status == 404 and env["error"]["code"] == "NOT_FOUND"


async def test_file_sources_only_under_the_model_roots(api, tmp_path):
    root = tmp_path / "models"
    params = init_params("mlp", {"in": 8, "hidden": [16], "out": 4}, 7)
    save_checkpoint(root / "m.safetensors", "mlp", {"in": 8, "hidden": [16], "out": 4}, params)
    save_checkpoint(tmp_path / "outside.safetensors", "mlp", {"in": 8, "hidden": [16], "out": 4},
                    params)
    (root / "link.safetensors").symlink_to(tmp_path / "outside.safetensors")

    rec = await register(api, "from-file", f"file://{root}/m.safetensors")
    assert rec["status"] == "ready" and locations(rec) == {"node1:disk": "ready"}
    assert rec["checksum"] == sha256((root / "m.safetensors").read_bytes())
    for url, code in ((f"file://{tmp_path}/outside.safetensors", 403),
                      (f"file://{root}/../outside.safetensors", 403),
                      (f"file://{root}/link.safetensors", 403),
                      (f"file://{root}/missing.safetensors", 404)):
        status, env, _ = await api("POST", f"{API}/models",
                                   body={"model_name": "x", "source_url": url})
        assert status == code, (url, env)
    (root / "junk.bin").write_bytes(b"not a model")
    status, env, _ = await api("POST", f"{API}/models", body={
        "model_name": "junk", "source_url": f"file://{root}/junk.bin"})
    assert status == 400 and env["error"]["code"] == "INVALID_REQUEST"
    status, _, _ = await api("GET", f"{API}/models/junk")
    assert status == 404

    import torch

    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.Linear(3, 2)), buf)
    (root / "ts.pt").write_bytes(buf.getvalue())
    ts = await register(api, "ts", f"file://{root}/ts.pt")
    assert ts["format"] == "torchscript" and ts["checksum"] == sha256(buf.getvalue())


async def test_copies_and_moves_carry_identical_bytes(api, gswarm_app):
    rec = await register(api, "m", MLP.format(seed=3))
    checksum = rec["checksum"]

    status, env, _ = await api("POST", f"{API}/models/m/copy",
                               body={"source_device": "node1:disk", "target_device": "node2:dram",
                                     "verify_checksum": True})
    assert status == 202, env
    assert env["data"]["task_type"] == "model_copy" and env["data"]["status"] in (
        "pending", "running")
    t = await finished(api, env["data"]["task_id"])
    assert t["status"] == "completed", t
    assert t["result"]["checksum_verified"] is True
    assert await checksum_on(gswarm_app, "m", "node2:dram") == checksum

    status, env, _ = await api("POST", f"{API}/models/m/move",
                               body={"source_device": "node2:dram", "target_device": "node2:disk"})
    assert status == 202, env
    assert (await finished(api, env["data"]["task_id"]))["status"] == "completed"
    assert locations(await model(api, "m")) == {"node1:disk": "ready", "node2:disk": "ready"}
    assert await checksum_on(gswarm_app, "m", "node2:disk") == checksum
    assert (store_of(gswarm_app, "node2") / "m" / "v1.safetensors").exists()

    status, env, _ = await api("POST", f"{API}/models/m/locations", body={"device": "node1:dram"})
    assert status == 202, env
    assert (await finished(api, env["data"]["task_id"]))["status"] == "completed"
    assert await checksum_on(gswarm_app, "m", "node1:dram") == checksum
    status, env, _ = await api("GET", f"{API}/models/m/locations")
    assert status == 200 and {loc["device"] for loc in env["data"]["locations"]} == {
        "node1:disk", "node1:dram", "node2:disk"}

    bad = [
        ("copy", {"source_device": "node2:dram", "target_device": "node1:dram"}, 404),
        ("copy", {"source_device": "node1:disk", "target_device": "node2:disk"}, 409),
        ("copy", {"source_device": "node1:disk", "target_device": "node2:gpu3"}, 404),
        ("copy", {"source_device": "node1:disk", "target_device": "node7:dram"}, 404),
        ("copy", {"source_device": "node1:disk", "target_device": "node2:dram",
                  "priority": "urgent"}, 400),
        ("copy", {"source_device": "node1:disk", "target_device": "node2:dram",
                  "dependencies": ["nope-1"]}, 400),
        ("copy", {"source_device": "node1:disk", "target_device": "node2:dram",
                  "bandwidth_limit": 0}, 400),
        ("move", {"source_device": "node1:disk"}, 400),
        ("locations", {"device": "node1:disk"}, 409),
    ]
    for route, body, code in bad:
        status, env, _ = await api("POST", f"{API}/models/m/{route}", body=body)
        assert status == code, (route, body, env)
    status, env, _ = await api("POST", f"{API}/models/nope/copy",
                               body={"source_device": "node1:disk", "target_device": "node2:dram"})
    assert status == 404 and env["error"]["code"] == "MODEL_NOT_FOUND"

    status, env, _ = await api("DELETE", f"{API}/models/m/locations/node1:dram")
    assert status == 200 and env["data"]["deleted"] is True
    status, env, _ = await api("DELETE", f"{API}/models/m", params={"device": "node2:disk"})
    assert status == 200
    assert not (store_of(gswarm_app, "node2") / "m").exists()
    for force in ("false", "true"):  # the last copy: never, force or not
        status, env, _ = await api("DELETE", f"{API}/models/m/locations/node1:disk",
                                   params={"force": force})
        assert status == 409 and env["error"]["code"] == "CONFLICT"
    status, env, _ = await api("DELETE", f"{API}/models/m/locations/node2:dram")
    assert status == 404

    status, env, _ = await api("DELETE", f"{API}/models/m")
    assert status == 200 and env["data"]["locations_removed"] == ["node1:disk"]
    assert not (store_of(gswarm_app, "node1") / "m").exists()
    status, env, _ = await api("GET", f"{API}/models/m")
    assert status == 404


async def test_http_download_checksum_and_redownload(api, gswarm_app):
    await register(api, "seed", MLP.format(seed=5))
    payload = (store_of(gswarm_app, "node1") / "seed" / "v1.safetensors").read_bytes()
    with Source() as src:
        src.files["w.safetensors"] = payload
        rec = await register(api, "web", src.url("w.safetensors"), download_to="node2:dram",
                             checksum=sha256(payload))
        assert rec["status"] == "downloading" and rec["task_id"].startswith("model_download-web")
        assert locations(rec) == {"node2:dram": "copying"}
        t = await finished(api, rec["task_id"])
        assert t["status"] == "completed", t
        rec = await model(api, "web")
        assert rec["status"] == "ready" and rec["checksum"] == sha256(payload)
        assert rec["model_type"] == "mlp" and rec["model_size"] == len(payload)
        assert await checksum_on(gswarm_app, "web", "node2:dram") == sha256(payload)

        status, env, _ = await api("POST", f"{API}/models/web/download",
                                   body={"target_device": "node1:disk"})
        assert status == 202 and set(env["data"]) >= {"task_id", "status", "position",
                                                       "estimated_time"}
        assert (await finished(api, env["data"]["task_id"]))["status"] == "completed"
        assert await checksum_on(gswarm_app, "web", "node1:disk") == sha256(payload)

        bad = await register(api, "web-bad", src.url("w.safetensors"), download_to="node2:disk",
                             checksum="0" * 64)
        t = await finished(api, bad["task_id"])
        assert t["status"] == "failed" and "checksum mismatch" in t["error"]["message"]
        rec = await model(api, "web-bad")
        assert rec["status"] == "failed" and rec["locations"] == []
        assert list(store_of(gswarm_app, "node2").rglob("*.part")) == []
        assert not list((store_of(gswarm_app, "node2") / "web-bad").glob("v*"))

        gone = await register(api, "web-gone", src.url("missing.safetensors"))
        t = await finished(api, gone["task_id"])
        assert t["status"] == "failed" and t["error"]["code"] == "NETWORK_ERROR"
        assert (await model(api, "web-gone"))["locations"] == []


@pytest.mark.parametrize("gswarm_config", [{"dram": 2000}], indirect=True)  # an mlp: 1296 bytes
async def test_capacity_507_and_lru_eviction(api, gswarm_app):
    await register(api, "a", MLP.format(seed=1))
    await register(api, "b", MLP.format(seed=2))
    body = {"source_device": "node1:disk", "target_device": "node2:dram"}
    status, env, _ = await api("POST", f"{API}/models/a/copy", body=body)
    assert (await finished(api, env["data"]["task_id"]))["status"] == "completed"

    status, env, _ = await api("POST", f"{API}/models/b/copy", body=body)
    assert status == 507 and env["error"]["code"] == "INSUFFICIENT_MEMORY"
    details = env["error"]["details"]
    assert details["device"] == "node2:dram" and details["available"] == 2000 - 1296
    assert details["required"] == (await model(api, "b"))["model_size"]

    status, env, _ = await api("POST", f"{API}/models/b/copy", body={**body, "evict": True})
    assert status == 202, env
    assert (await finished(api, env["data"]["task_id"]))["status"] == "completed"
    assert locations(await model(api, "a")) == {"node1:disk": "ready"}  # evicted, not lost
    assert locations(await model(api, "b")) == {"node1:disk": "ready", "node2:dram": "ready"}

    # the only copy of a model is never evicted
    await register(api, "c", MLP.format(seed=3), download_to="node1:dram")
    status, env, _ = await api("POST", f"{API}/models", body={
        "model_name": "d", "source_url": MLP.format(seed=4), "download_to": "node1:dram",
        "evict": True})
    assert status == 507 and env["error"]["code"] == "INSUFFICIENT_MEMORY"
    status, _, _ = await api("GET", f"{API}/models/d")
    assert status == 404
    assert locations(await model(api, "c")) == {"node1:dram": "ready"}


async def test_cancelled_copy_leaves_no_location_and_no_file(api, gswarm_app):
    await register(api, "slow", MLP.format(seed=0))
    status, env, _ = await api("POST", f"{API}/models/slow/copy", body={
        "source_device": "node1:disk", "target_device": "node2:disk", "bandwidth_limit": 100})
    assert status == 202 and env["data"]["estimated_time"] == pytest.approx(12.96)
    task_id = env["data"]["task_id"]

    await running(api, task_id)
    status, env, _ = await api("POST", f"{API}/queue/tasks/{task_id}/cancel")
    assert status == 200 and env["data"]["status"] == "cancelled"
    assert locations(await model(api, "slow")) == {"node1:disk": "ready"}
    assert not list((store_of(gswarm_app, "node2")).rglob("slow/*"))


async def test_a_load_waiting_on_a_copy_that_does_not_complete_makes_its_own(api, gswarm_app):
    """A compute-plane load on node2:dram finds a copy there under way (100 bytes a second) and
    waits for it; the copy is cancelled: the load copies the model itself and answers 201."""
    await register(api, "w", MLP.format(seed=0))
    status, env, _ = await api("POST", f"{API}/models/w/copy", body={
        "source_device": "node1:disk", "target_device": "node2:dram", "bandwidth_limit": 100})
    assert status == 202, env
    slow = env["data"]["task_id"]

    await running(api, slow)
    load = asyncio.ensure_future(api("POST", "gswarm/compute/v1/models",
                                     body={"model_id": "w", "device": "node2:dram"}))
    await asyncio.sleep(1.0)
    assert not load.done(), "the load should be waiting for the copy under way"
    status, env, _ = await api("POST", f"{API}/queue/tasks/{slow}/cancel")
    assert status == 200 and env["data"]["status"] == "cancelled"
    status, env, _ = await load
    assert status == 201, env
    assert [(r["node"], r["device"]) for r in env["data"]["replicas"]] == [("node2", "dram")]
    assert locations(await model(api, "w")) == {"node1:disk": "ready", "node2:dram": "ready"}
    assert await checksum_on(gswarm_app, "w", "node2:dram") == await checksum_on(
        gswarm_app, "w", "node1:disk")


async def test_delete_with_services_needs_force_and_stops_them(api, gswarm_app):
    await register(api, "served", MLP.format(seed=0))
    status, env, _ = await api("POST", f"{API}/services", body={"model_name": "served"})
    assert status == 201, env
    service = env["data"]
    assert (await model(api, "served"))["services"] == {service["node"]: service["url"]}
    status, env, _ = await api("DELETE", f"{API}/models/served")
    assert status == 409 and env["error"]["code"] == "CONFLICT"
    status, env, _ = await api("DELETE", f"{API}/models/served", params={"force": "true"})
    assert status == 200, env

    _, env, _ = await api("GET", f"{API}/services")
    assert env["data"]["services"] == []
    status, _, _ = await api("GET", f"{API}/services/{service['service_id']}")
    assert status == 404
    _, env, _ = await api("GET", "gswarm/compute/v1/models")
    assert env["data"]["models"] == []
    status, env, _ = await api("POST", "gswarm/compute/v1/inference",
                               body={"model_id": "served", "input_data": [[0.0] * 8]})
    assert (status, env["error"]["code"]) == (404, "MODEL_NOT_FOUND")


async def test_ws_models_streams_registry_changes(api, jp_ws_fetch):
    with pytest.raises(HTTPClientError) as exc:
        await jp_ws_fetch(*f"{API}/ws/models".split("/"), headers={"Authorization": ""})
    assert exc.value.code == 401
    ws = await jp_ws_fetch(*f"{API}/ws/models".split("/"))
    await register(api, "w", MLP.format(seed=0))
    status, env, _ = await api("POST", f"{API}/models/w/copy",
                               body={"source_device": "node1:disk", "target_device": "node2:dram"})
    await finished(api, env["data"]["task_id"])
    await api("DELETE", f"{API}/models/w/locations/node2:dram")
    await api("DELETE", f"{API}/models/w")
    changes = []
    while not changes or changes[-1][0] != "deleted":
        message = json.loads(await asyncio.wait_for(ws.read_message(), 30))
        assert message["event"] == "model" and message["data"]["model_name"] == "w"
        changes.append((message["data"]["change"], message["data"].get("device"),
                        message["data"].get("status")))
    ws.close()
    assert changes[0][0] == "registered"
    assert ("location_added", "node1:disk", "ready") in changes
    assert ("location_added", "node2:dram", "ready") in changes
    assert ("location_removed", "node2:dram", None) in changes
