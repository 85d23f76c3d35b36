"""Data pool routes over a real server and a real (threaded) Dask cluster."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from gswarm_jupyter.core.data_api import ChunkRecord

from .data_helpers import (
    API,
    b64,
    finished,
    locations,
    put_bytes,
    put_tensor,
    raw_content,
)


@pytest.fixture
def gswarm_config(gswarm_config, tmp_path):
    (tmp_path / "models").mkdir()
    gswarm_config["model_roots"] = [str(tmp_path / "models")]
    return gswarm_config


async def test_put_get_list_content_delete(api, jp_fetch):
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    chunk = await put_tensor(api, array, "node1:dram", type="intermediate")
    assert re.fullmatch(r"chunk-[0-9a-f]{12}", chunk["chunk_id"])
    assert chunk["size"] == array.nbytes and chunk["format"] == "tensor"
    assert chunk["chunk_type"] == "intermediate"
    assert locations(chunk) == {"node1:dram": "available"}
    assert chunk["metadata"]["shape"] == [2, 3, 4] and chunk["metadata"]["dtype"] == "float32"
    assert chunk["metadata"]["access_count"] == 0 and chunk["references"] == 0
    ChunkRecord.model_validate(chunk)

    code, body, headers = await raw_content(jp_fetch, chunk["chunk_id"])
    assert code == 200 and headers["Content-Type"] == "application/octet-stream"
    assert np.array_equal(np.frombuffer(body, dtype=np.float32).reshape(2, 3, 4), array)

    status, env, _ = await api("GET", f"{API}/data/{chunk['chunk_id']}")
    assert status == 200 and env["data"]["metadata"]["access_count"] == 1

    other = await put_bytes(api, b"\x00\xffraw", "node2:disk")
    js = await put_bytes(api, json.dumps({"a": 1}).encode(), "node2:dram", format="json",
                         type="output")
    code, body, headers = await raw_content(jp_fetch, js["chunk_id"])
    assert headers["Content-Type"] == "application/json" and json.loads(body) == {"a": 1}
    code, body, _ = await raw_content(jp_fetch, other["chunk_id"])
    assert body == b"\x00\xffraw"

    status, env, _ = await api("GET", f"{API}/data")
    assert status == 200 and env["data"]["total"] == 3
    ids = lambda params: [c["chunk_id"] for c in params["chunks"]]  # noqa: E731
    status, env, _ = await api("GET", f"{API}/data", params={"node": "node2"})
    assert set(ids(env["data"])) == {other["chunk_id"], js["chunk_id"]}
    status, env, _ = await api("GET", f"{API}/data", params={"device": "disk"})
    assert ids(env["data"]) == [other["chunk_id"]]
    status, env, _ = await api("GET", f"{API}/data", params={"device": "node1:dram"})
    assert ids(env["data"]) == [chunk["chunk_id"]]
    status, env, _ = await api("GET", f"{API}/data", params={"type": "output"})
    assert ids(env["data"]) == [js["chunk_id"]]
    status, env, _ = await api("GET", f"{API}/data", params={"per_page": 2, "page": 2})
    assert len(env["data"]["chunks"]) == 1 and env["data"]["per_page"] == 2

    status, env, _ = await api("DELETE", f"{API}/data/{other['chunk_id']}")
    assert status == 200 and env["data"]["locations_removed"] == ["node2:disk"]
    status, env, _ = await api("GET", f"{API}/data/{other['chunk_id']}")
    assert status == 404 and env["error"]["code"] == "NOT_FOUND"


async def test_disk_copy_is_a_file_in_the_node_store(api, gswarm_app, jp_fetch):
    data = bytes(range(256)) * 10
    chunk = await put_bytes(api, data, "node1:disk")
    store = gswarm_app.context.runtime.nodes.get("node1").report["store"]
    path = f"{store}/chunks/{chunk['chunk_id']}.bin"
    with open(path, "rb") as f:
        assert f.read() == data
    await api("DELETE", f"{API}/data/{chunk['chunk_id']}")
    import os

    assert not os.path.exists(path)


async def test_bad_input_is_refused_and_nothing_is_stored(api, gswarm_app, tmp_path):
    async def post(body):
        return await api("POST", f"{API}/data", body=body)

    cases = [
        ({"data": "not base64!!", "device": "node1:dram"}, 400, "data"),
        ({"data": b64(b"x" * 10), "device": "node1:dram", "format": "tensor",
          "metadata": {"shape": [3], "dtype": "float32"}}, 400, "data"),
        ({"data": b64(b"x" * 12), "device": "node1:dram", "format": "tensor",
          "metadata": {"shape": [3], "dtype": "float33"}}, 400, "metadata.dtype"),
        ({"data": b64(b"x" * 12), "device": "node1:dram", "format": "tensor"}, 400,
         "metadata.shape"),
        ({"data": b64(b"{bad"), "device": "node1:dram", "format": "json"}, 400, "data"),
        ({"data": b64(b"x"), "device": "node1:dram", "format": "parquet"}, 400, "format"),
        ({"data": b64(b"x"), "device": "node1:dram", "type": "scratch"}, 400, "type"),
        ({"data": b64(b"x"), "device": "node1:dram", "colour": "red"}, 400, "colour"),
        ({"data": b64(b"x"), "device": "dram"}, 400, "device"),
        ({"device": "node1:dram"}, 400, "data"),
        ({"data": b64(b"x"), "url": "http://localhost/x", "device": "node1:dram"}, 400, "data"),
        ({"url": "ftp://example.invalid/x", "device": "node1:dram"}, 400, "url"),
        ({"data": b64(b"x"), "device": "node9:dram"}, 404, None),
        ({"data": b64(b"x"), "device": "node1:gpu0"}, 404, None),
        ({"data": b64(b"x"), "device": "node1:vgpu3"}, 404, None),
        ({"url": "file:///etc/hostname", "device": "node1:dram"}, 403, None),
        ({"data": b64(b"x"), "device": "node1:dram", "priority": "asap"}, 400, "priority"),
        ({"data": b64(b"x"), "device": "node1:dram", "dependencies": ["x-1"]}, 400,
         "dependencies"),
    ]
    for body, status, field in cases:
        code, env, _ = await post(body)
        assert code == status, (body, env)
        assert env["success"] is False
        if field is not None:
            assert env["error"]["details"]["field"] == field, (body, env)
    status, env, _ = await api("GET", f"{API}/data")
    assert env["data"]["total"] == 0


async def test_capacity_is_checked_before_storing(api, gswarm_app):
    node = gswarm_app.context.runtime.nodes.get("node1")
    node.report["devices"]["dram"]["available"] = 1000  # what the next heartbeat says is left
    code, env, _ = await api("POST", f"{API}/data", body={"data": b64(b"x" * 2000),
                                                          "device": "node1:dram"})
    assert code == 507, env
    assert env["error"]["code"] == "INSUFFICIENT_MEMORY"
    assert env["error"]["details"] == {"required": 2000, "available": 1000,
                                       "device": "node1:dram"}


async def test_file_urls_under_the_model_roots(api, tmp_path, jp_fetch):
    root = tmp_path / "models"
    (root / "blob.bin").write_bytes(b"file bytes")
    code, env, _ = await api("POST", f"{API}/data",
                             body={"url": f"file://{root}/blob.bin", "device": "node2:dram"})
    assert code == 201, env
    _, body, _ = await raw_content(jp_fetch, env["data"]["chunk_id"])
    assert body == b"file bytes"
    code, env, _ = await api("POST", f"{API}/data",
                             body={"url": f"file://{root}/../outside.bin", "device": "node2:dram"})
    assert code == 403 and env["error"]["code"] == "FORBIDDEN"
    code, env, _ = await api("POST", f"{API}/data",
                             body={"url": f"file://{root}/missing.bin", "device": "node2:dram"})
    assert code == 404


async def test_move_within_a_node(api, jp_fetch):
    array = np.random.default_rng(0).integers(0, 255, size=(64, 64), dtype=np.uint8)
    chunk = await put_tensor(api, array, "node1:dram")
    cid = chunk["chunk_id"]
    code, env, _ = await api("POST", f"{API}/data/{cid}/move", body={"target_device": "node1:disk",
                                                                    "priority": "high"})
    assert code == 202, env
    t = env["data"]
    assert re.fullmatch(rf"move-{cid}-\d+", t["task_id"])
    assert t["priority"] == "high" and t["task_type"] == "move"
    assert t["resources"]["chunks"] == [cid]
    assert t["resources"]["devices"] == ["node1:dram", "node1:disk"]
    done = await finished(api, t["task_id"])
    assert done["status"] == "completed", done
    assert done["progress"] == 100 and done["result"]["size"] == array.nbytes
    status, env, _ = await api("GET", f"{API}/data/{cid}")
    assert locations(env["data"]) == {"node1:disk": "available"}
    _, body, _ = await raw_content(jp_fetch, cid)
    assert body == array.tobytes()


async def test_move_and_transfer_bad_input(api):
    chunk = await put_bytes(api, b"abc", "node1:dram")
    cid = chunk["chunk_id"]
    cases = [
        ("move", {"target_device": "node1:dram"}, 409),  # already there
        ("move", {"target_device": "node2:disk"}, 409),  # no copy on node2: a transfer's job
        ("move", {"target_device": "disk"}, 400),  # bare device on two nodes
        ("move", {"target_device": "node7:disk"}, 404),
        ("move", {"target_device": "node1:gpu0"}, 404),
        ("move", {"target_device": "node1:disk", "priority": "urgent"}, 400),
        ("move", {"target_device": "node1:disk", "dependencies": ["nope-1"]}, 400),
        ("move", {}, 400),
        ("transfer", {"target_node": "node1", "target_device": "disk"}, 409),  # same node
        ("transfer", {"target_node": "node3", "target_device": "dram"}, 404),
        ("transfer", {"target_node": "node2", "target_device": "gpu1"}, 404),
        ("transfer", {"target_node": "node2", "target_device": "node1:dram"}, 400),
        ("transfer", {"target_node": "node2"}, 400),
        ("transfer", {"target_node": "node2", "target_device": "dram", "extra": 1}, 400),
    ]
    for kind, body, status in cases:
        code, env, _ = await api("POST", f"{API}/data/{cid}/{kind}", body=body)
        assert code == status, (kind, body, env)
        if status == 400:
            assert env["error"]["code"] == "INVALID_REQUEST" and env["error"]["details"]["field"]
    code, env, _ = await api("POST", f"{API}/data/chunk-000000000000/move",
                             body={"target_device": "node1:disk"})
    assert code == 404
    code, env, _ = await api("POST", f"{API}/data/{cid}/move", body={"target_device": "node1:disk",
                                                                    "dependencies": ["x"]})
    assert env["error"]["details"]["field"] == "dependencies"


async def test_transfer_between_nodes_keeps_or_deletes_the_source(api, jp_fetch):
    data = np.random.default_rng(1).bytes(3 * 1024 * 1024 + 17)
    chunk = await put_bytes(api, data, "node1:dram")
    cid = chunk["chunk_id"]
    code, env, _ = await api("POST", f"{API}/data/{cid}/transfer",
                             body={"target_node": "node2", "target_device": "dram"})
    assert code == 202, env
    done = await finished(api, env["data"]["task_id"])
    assert done["status"] == "completed", done
    status, env, _ = await api("GET", f"{API}/data/{cid}")
    assert locations(env["data"]) == {"node1:dram": "available", "node2:dram": "available"}

    code, env, _ = await api("POST", f"{API}/data/{cid}/transfer",
                             body={"target_node": "node2", "target_device": "disk",
                                   "delete_source": True})
    done = await finished(api, env["data"]["task_id"])
    assert done["status"] == "completed", done
    status, env, _ = await api("GET", f"{API}/data/{cid}")
    assert set(locations(env["data"])) == {"node2:dram", "node2:disk"}  # node1's copy went
    _, body, _ = await raw_content(jp_fetch, cid)
    assert body == data


async def test_content_and_delete_of_unknown_chunks(api):
    for method, path in (("GET", "chunk-000000000000"), ("GET", "chunk-000000000000/content"),
                         ("DELETE", "chunk-000000000000")):
        code, env, _ = await api(method, f"{API}/data/{path}")
        assert code == 404 and env["error"]["code"] == "NOT_FOUND", (method, path, env)
    code, env, _ = await api("DELETE", f"{API}/data/chunk-000000000000", params={"force": "maybe"})
    assert code == 400
    code, env, _ = await api("GET", f"{API}/data", params={"per_page": 0})
    assert code == 400


async def test_routes_need_credentials(api):
    code, env, _ = await api("GET", f"{API}/data", token=False)
    assert code == 401
    body = {"data": b64(b"x"), "device": "node1:dram"}
    code, env, _ = await api("POST", f"{API}/data", body=body, token=False)
    assert code == 401


async def test_data_may_carry_a_url_as_api_md_says(api, tmp_path):
    """API.md: `data: base64 | url`; a url in `data` is fetched like one in `url`."""
    source = tmp_path / "models" / "payload.bin"  # under the model roots this module configures
    source.parent.mkdir(exist_ok=True)
    source.write_bytes(b"from a file url")
    status, body, _ = await api(
        "POST", "gswarm/api/v1/data",
        body={"data": source.as_uri(), "format": "bytes", "device": "node1:dram"},
    )
    assert status == 201, body
    assert body["data"]["size"] == len(b"from a file url")
