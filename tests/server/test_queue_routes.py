"""Task queue routes, `/ws/tasks`, URL downloads, cancellation and dependency failure."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from tornado.httpclient import HTTPClientError

from gswarm_jupyter.core.queue_api import QueueStatus, TaskList

from .data_helpers import API, finished, locations, put_bytes, raw_content, task, wait_for

BLOB = np.random.default_rng(7).bytes(300_000)


class Files(BaseHTTPRequestHandler):
    """`/blob`: bytes; `/slow`: waits for `release`, then 404; anything else: 404."""

    release = threading.Event()

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/blob":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BLOB)))
            self.end_headers()
            self.wfile.write(BLOB)
            return
        if self.path == "/slow":
            self.release.wait(60)
        self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_url() -> Iterator[str]:
    Files.release = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    Files.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def gswarm_config(gswarm_config):
    gswarm_config["max_concurrent_tasks"] = 2
    return gswarm_config


async def test_queue_summary_and_task_listing(api):
    status, env, _ = await api("GET", f"{API}/queue")
    assert status == 200, env
    assert env["data"] == {
        "pending": 0, "running": 0, "completed": 0, "failed": 0, "cancelled": 0,
        "config": {
            "max_concurrent_tasks": 2,
            "priority_levels": ["critical", "high", "normal", "low"],
            "resource_tracking": True,
        },
    }
    chunk = await put_bytes(api, b"q" * 1000, "node1:dram")
    ids = []
    for device in ("disk",):
        code, env, _ = await api("POST", f"{API}/data/{chunk['chunk_id']}/transfer",
                                 body={"target_node": "node2", "target_device": device})
        assert code == 202, env
        ids.append(env["data"]["task_id"])
    code, env, _ = await api("POST", f"{API}/data/{chunk['chunk_id']}/move",
                             body={"target_device": "node1:disk", "priority": "low",
                                   "dependencies": ids})
    assert code == 202 and env["data"]["dependencies"] == ids
    ids.append(env["data"]["task_id"])
    for task_id in ids:
        assert (await finished(api, task_id))["status"] == "completed"

    status, env, _ = await api("GET", f"{API}/queue")
    assert env["data"]["completed"] == 2
    status, env, _ = await api("GET", f"{API}/queue/tasks")
    assert [t["task_id"] for t in env["data"]["tasks"]] == ids[::-1]  # newest first
    TaskList.model_validate(env["data"])
    QueueStatus.model_validate((await api("GET", f"{API}/queue"))[1]["data"])
    status, env, _ = await api("GET", f"{API}/queue/tasks", params={"type": "move"})
    assert [t["task_id"] for t in env["data"]["tasks"]] == [ids[1]]
    status, env, _ = await api("GET", f"{API}/queue/tasks", params={"status": "completed",
                                                                   "limit": 1})
    assert len(env["data"]["tasks"]) == 1 and env["data"]["total"] == 2
    status, env, _ = await api("GET", f"{API}/queue/tasks", params={"status": "pending"})
    assert env["data"]["tasks"] == []
    for params in ({"status": "sleeping"}, {"limit": 0}, {"limit": "x"}, {"colour": "red"}):
        code, env, _ = await api("GET", f"{API}/queue/tasks", params=params)
        assert code == 400 and env["error"]["code"] == "INVALID_REQUEST", params
    code, env, _ = await api("GET", f"{API}/queue/tasks/move-chunk-000000000000-99")
    assert code == 404 and env["error"]["code"] == "NOT_FOUND"
    code, env, _ = await api("GET", f"{API}/queue", token=False)
    assert code == 401


async def test_history_filters(api):
    chunk = await put_bytes(api, b"h" * 100, "node1:dram")
    before = time.time()
    code, env, _ = await api("POST", f"{API}/data/{chunk['chunk_id']}/move",
                             body={"target_device": "node1:disk"})
    done = await finished(api, env["data"]["task_id"])
    status, env, _ = await api("GET", f"{API}/queue/history")
    assert status == 200 and [t["task_id"] for t in env["data"]["tasks"]] == [done["task_id"]]
    assert env["data"]["tasks"][0] == done
    status, env, _ = await api("GET", f"{API}/queue/history", params={"since": str(before - 1)})
    assert len(env["data"]["tasks"]) == 1
    status, env, _ = await api("GET", f"{API}/queue/history",
                               params={"since": "2999-01-01T00:00:00Z"})
    assert env["data"]["tasks"] == []
    status, env, _ = await api("GET", f"{API}/queue/history", params={"status": "failed"})
    assert env["data"]["tasks"] == []
    for params in ({"since": "last week"}, {"status": "running"}, {"limit": 5000}):
        code, env, _ = await api("GET", f"{API}/queue/history", params=params)
        assert code == 400 and env["error"]["code"] == "INVALID_REQUEST", params


async def test_url_download_as_a_task(api, http_url, jp_fetch):
    code, env, _ = await api("POST", f"{API}/data", body={"url": f"{http_url}/blob",
                                                          "device": "node2:disk"})
    assert code == 201, env
    chunk = env["data"]
    assert chunk["size"] is None and chunk["task_id"].startswith("download-")
    done = await finished(api, chunk["task_id"])
    assert done["status"] == "completed", done
    assert done["result"]["size"] == len(BLOB)
    status, env, _ = await api("GET", f"{API}/data/{chunk['chunk_id']}")
    assert env["data"]["size"] == len(BLOB)
    assert locations(env["data"]) == {"node2:disk": "available"}
    _, body, _ = await raw_content(jp_fetch, chunk["chunk_id"])
    assert body == BLOB

    code, env, _ = await api("POST", f"{API}/data", body={"url": f"{http_url}/missing",
                                                          "device": "node1:dram"})
    assert code == 201
    failed = await finished(api, env["data"]["task_id"])
    assert failed["status"] == "failed" and failed["error"]["code"] == "NETWORK_ERROR"
    status, env, _ = await api("GET", f"{API}/data/{env['data']['chunk_id']}")
    assert env["data"]["locations"] == [] and env["data"]["error"]["code"] == "NETWORK_ERROR"


async def test_failed_dependency_fails_the_dependant(api, http_url):
    code, env, _ = await api("POST", f"{API}/data", body={"url": f"{http_url}/slow",
                                                          "device": "node1:dram"})
    assert code == 201, env
    chunk_id, download = env["data"]["chunk_id"], env["data"]["task_id"]
    assert locations(env["data"]) == {"node1:dram": "downloading"}
    code, env, _ = await api("POST", f"{API}/data/{chunk_id}/transfer",
                             body={"target_node": "node2", "target_device": "dram",
                                   "dependencies": [download], "priority": "critical"})
    assert code == 202, env
    transfer = env["data"]["task_id"]
    assert env["data"]["status"] == "pending"
    assert (await task(api, download))["status"] == "running"
    Files.release.set()  # the download now fails with a 404
    failed = await finished(api, transfer)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "DEPENDENCY_FAILED"
    assert failed["error"]["details"]["dependency"] == download
    assert failed["started_at"] is None
    assert (await task(api, download))["error"]["code"] == "NETWORK_ERROR"
    status, env, _ = await api("GET", f"{API}/data/{chunk_id}")
    assert env["data"]["locations"] == []


async def test_cancel_pending_then_finished_is_conflict(api, http_url, gswarm_app):
    # a download blocked before its first byte cannot see the cancel flag: it is torn down
    gswarm_app.context.tasks.cancel_grace = 0.5
    code, env, _ = await api("POST", f"{API}/data", body={"url": f"{http_url}/slow",
                                                          "device": "node1:disk"})
    download = env["data"]["task_id"]
    chunk_id = env["data"]["chunk_id"]
    code, env, _ = await api("POST", f"{API}/data/{chunk_id}/transfer",
                             body={"target_node": "node2", "target_device": "dram",
                                   "dependencies": [download]})
    pending = env["data"]["task_id"]
    code, env, _ = await api("POST", f"{API}/queue/tasks/{pending}/cancel")
    assert code == 200 and env["data"]["status"] == "cancelled", env
    assert env["data"]["completed_at"] is not None
    code, env, _ = await api("POST", f"{API}/queue/tasks/{pending}/cancel")
    assert code == 409 and env["error"]["code"] == "CONFLICT"
    code, env, _ = await api("POST", f"{API}/queue/tasks/nope-1/cancel")
    assert code == 404
    code, env, _ = await api("POST", f"{API}/queue/tasks/{download}/cancel")  # a running download
    assert code == 200 and env["data"]["status"] == "cancelled", env
    status, env, _ = await api("GET", f"{API}/data/{chunk_id}")
    assert env["data"]["locations"] == []
    code, env, _ = await api("POST", f"{API}/queue/tasks/{download}/cancel", token=False)
    assert code == 401


async def test_cancel_a_running_transfer_leaves_no_partial_copy(api, gswarm_app):
    data = np.random.default_rng(3).bytes(4 * 1024 * 1024)
    chunk = await put_bytes(api, data, "node1:dram")
    cid = chunk["chunk_id"]
    code, env, _ = await api("POST", f"{API}/data/{cid}/transfer",
                             body={"target_node": "node2", "target_device": "disk",
                                   "bandwidth_limit": 1024 * 1024})
    assert code == 202, env
    task_id = env["data"]["task_id"]

    async def moving():
        t = await task(api, task_id)
        return t if t["status"] == "running" and t["progress"] >= 5 else None

    await wait_for(moving, "the transfer to make progress")
    status, env, _ = await api("GET", f"{API}/data/{cid}")
    assert locations(env["data"])["node2:disk"] == "copying"
    assert env["data"]["references"] == 1
    code, env, _ = await api("DELETE", f"{API}/data/{cid}")  # in use by the running transfer
    assert code == 409 and env["error"]["details"]["references"] == 1

    code, env, _ = await api("POST", f"{API}/queue/tasks/{task_id}/cancel")
    assert code == 200, env
    assert env["data"]["status"] == "cancelled" and env["data"]["progress"] < 100
    status, env, _ = await api("GET", f"{API}/data/{cid}")
    assert locations(env["data"]) == {"node1:dram": "available"}
    store = Path(gswarm_app.context.runtime.nodes.get("node2").report["store"]) / "chunks"
    assert not any(p.name.startswith(cid) for p in store.glob("*")), list(store.glob("*"))
    code, env, _ = await api("POST", f"{API}/queue/tasks/{task_id}/cancel")
    assert code == 409


async def test_delete_with_force_cancels_the_user(api, gswarm_app):
    chunk = await put_bytes(api, b"f" * (2 * 1024 * 1024), "node1:dram")
    cid = chunk["chunk_id"]
    code, env, _ = await api("POST", f"{API}/data/{cid}/transfer",
                             body={"target_node": "node2", "target_device": "dram",
                                   "bandwidth_limit": 256 * 1024})
    task_id = env["data"]["task_id"]
    await wait_for(lambda: _is_running(api, task_id), "the transfer to run")
    code, env, _ = await api("DELETE", f"{API}/data/{cid}", params={"force": "true"})
    assert code == 200, env
    assert (await task(api, task_id))["status"] == "cancelled"
    code, env, _ = await api("GET", f"{API}/data/{cid}")
    assert code == 404


async def _is_running(api, task_id):
    return (await task(api, task_id))["status"] == "running"


async def test_priorities_order_the_waiting_tasks(api, http_url):
    """Two slots held by blocked downloads; the next three start in priority order."""
    blockers = []
    for node in ("node1", "node2"):
        code, env, _ = await api("POST", f"{API}/data", body={"url": f"{http_url}/slow",
                                                              "device": f"{node}:dram"})
        blockers.append(env["data"]["task_id"])
    chunk = await put_bytes(api, b"p" * 10, "node1:dram")
    started = []
    submitted = {}
    for priority, device in (("low", "node2:disk"), ("normal", "node2:dram"),
                             ("critical", "node1:disk")):
        node, dev = device.split(":")
        if node == "node1":
            body, kind = {"target_device": device, "priority": priority}, "move"
        else:
            body, kind = {"target_node": node, "target_device": dev, "priority": priority}, \
                "transfer"
        code, env, _ = await api("POST", f"{API}/data/{chunk['chunk_id']}/{kind}", body=body)
        assert code == 202, env
        submitted[env["data"]["task_id"]] = priority
    status, env, _ = await api("GET", f"{API}/queue")
    assert env["data"]["running"] == 2 and env["data"]["pending"] == 3
    Files.release.set()
    for task_id in list(submitted) + blockers:
        t = await finished(api, task_id)
        if task_id in submitted:
            assert t["status"] == "completed", t
            started.append((t["started_at"], submitted[task_id]))
    assert [p for _, p in sorted(started)] == ["critical", "normal", "low"]


async def test_ws_tasks_streams_every_change(api, jp_ws_fetch):
    ws = await jp_ws_fetch(*f"{API}/ws/tasks".split("/"))
    chunk = await put_bytes(api, b"w" * 5000, "node1:dram")
    code, env, _ = await api("POST", f"{API}/data/{chunk['chunk_id']}/move",
                             body={"target_device": "node1:disk"})
    task_id = env["data"]["task_id"]
    statuses = []
    while not statuses or statuses[-1] not in ("completed", "failed"):
        message = json.loads(await asyncio.wait_for(ws.read_message(), 30))
        assert message["event"] == "task" and message["timestamp"]
        assert message["data"]["task_id"] == task_id
        statuses.append(message["data"]["status"])
    ws.close()
    assert statuses[0] == "pending" and "running" in statuses and statuses[-1] == "completed"


async def test_ws_tasks_needs_credentials(jp_ws_fetch, gswarm_app):
    with pytest.raises(HTTPClientError) as exc:
        await jp_ws_fetch(*f"{API}/ws/tasks".split("/"), headers={"Authorization": ""})
    assert exc.value.code == 401
