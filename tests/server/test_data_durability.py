"""Restart durability (the gswarm side of the server restarted over the same data dir), transfers
between real worker processes, and a worker killed during a transfer."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from .data_helpers import API, finished, locations, put_bytes, raw_content, task, wait_for


async def restart(ext) -> None:
    """Stop every gswarm component (cluster included) and start fresh ones over the same data
    dir, as a server restart would."""
    await ext.context.stop()
    ext._state_lock.release()  # as the extension's own stop does; the new settings take it again
    ext.initialize_settings()
    ext.serverapp.web_app.settings["gswarm"] = ext.context
    await ext.context.start()
    await ext.context.runtime.wait_ready(timeout=120)


async def test_restart_keeps_chunks_tasks_and_history(api, gswarm_app, gswarm_config, jp_fetch):
    gswarm_app.context.tasks.queue.max_concurrent = 1
    a = np.random.default_rng(10).bytes(50_000)
    b = np.random.default_rng(11).bytes(60_000)
    c = np.random.default_rng(12).bytes(4 * 1024 * 1024)
    chunk_a = (await put_bytes(api, a, "node1:dram"))["chunk_id"]
    chunk_b = (await put_bytes(api, b, "node1:disk"))["chunk_id"]
    chunk_c = (await put_bytes(api, c, "node1:dram"))["chunk_id"]

    code, env, _ = await api("POST", f"{API}/data/{chunk_a}/transfer",
                             body={"target_node": "node2", "target_device": "disk"})
    done = await finished(api, env["data"]["task_id"])
    assert done["status"] == "completed"
    code, env, _ = await api("POST", f"{API}/data/{chunk_c}/transfer",
                             body={"target_node": "node2", "target_device": "dram",
                                   "bandwidth_limit": 512 * 1024})
    slow = env["data"]["task_id"]
    code, env, _ = await api("POST", f"{API}/data/{chunk_b}/transfer",
                             body={"target_node": "node2", "target_device": "disk"})
    waiting = env["data"]["task_id"]

    async def slow_running():
        t = await task(api, slow)
        return t["status"] == "running" and t["progress"] > 0

    await wait_for(slow_running, "the slow transfer to run")
    assert (await task(api, waiting))["status"] == "pending"

    await restart(gswarm_app)

    interrupted = await task(api, slow)
    assert interrupted["status"] == "failed"
    assert interrupted["error"]["details"]["reason"] == "interrupted"
    resumed = await finished(api, waiting)
    assert resumed["status"] == "completed", resumed

    status, env, _ = await api("GET", f"{API}/data")
    by_id = {c["chunk_id"]: locations(c) for c in env["data"]["chunks"]}
    assert by_id == {
        chunk_a: {"node1:dram": "lost", "node2:disk": "available"},
        chunk_b: {"node1:disk": "available", "node2:disk": "available"},
        chunk_c: {"node1:dram": "lost"},
    }
    _, body, _ = await raw_content(jp_fetch, chunk_a)
    assert body == a
    _, body, _ = await raw_content(jp_fetch, chunk_b)
    assert body == b
    code, _, _ = await raw_content(jp_fetch, chunk_c)
    assert code == 409

    status, env, _ = await api("GET", f"{API}/queue/history")
    assert [t["task_id"] for t in env["data"]["tasks"]] == [waiting, slow, done["task_id"]]
    status, env, _ = await api("GET", f"{API}/queue/history", params={"status": "failed"})
    assert [t["task_id"] for t in env["data"]["tasks"]] == [slow]
    code, env, _ = await api("POST", f"{API}/data/{chunk_c}/transfer",
                             body={"target_node": "node2", "target_device": "dram"})
    assert code == 409  # every copy is lost: nothing to read from


@pytest.fixture
def processes(gswarm_config):
    gswarm_config["local_processes"] = True
    gswarm_config["worker_memory_limit"] = "1GiB"
    return gswarm_config


@pytest.mark.slow
async def test_transfer_between_worker_processes_and_a_killed_worker(processes, api, gswarm_app,
                                                                     jp_fetch):
    nodes = gswarm_app.context.runtime.nodes
    assert nodes.get("node1").report["pid"] != nodes.get("node2").report["pid"] != os.getpid()

    data = np.random.default_rng(5).bytes(8 * 1024 * 1024 + 3)
    cid = (await put_bytes(api, data, "node1:dram"))["chunk_id"]
    code, env, _ = await api("POST", f"{API}/data/{cid}/transfer",
                             body={"target_node": "node2", "target_device": "dram",
                                   "delete_source": True})
    assert code == 202, env
    done = await finished(api, env["data"]["task_id"])
    assert done["status"] == "completed", done
    status, env, _ = await api("GET", f"{API}/data/{cid}")
    assert locations(env["data"]) == {"node2:dram": "available"}
    _, body, _ = await raw_content(jp_fetch, cid)  # read from node2's process
    assert body == data

    # A transfer whose target worker dies midway: the task fails, the source copy survives.
    source = np.random.default_rng(6).bytes(4 * 1024 * 1024)
    sid = (await put_bytes(api, source, "node1:disk"))["chunk_id"]
    code, env, _ = await api("POST", f"{API}/data/{sid}/transfer",
                             body={"target_node": "node2", "target_device": "dram",
                                   "bandwidth_limit": 1024 * 1024})
    task_id = env["data"]["task_id"]

    async def moving():
        t = await task(api, task_id)
        return t["status"] == "running" and t["progress"] >= 5

    await wait_for(moving, "the transfer to make progress")
    old_address = nodes.get("node2").address
    os.kill(nodes.get("node2").report["pid"], signal.SIGKILL)
    failed = await finished(api, task_id)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] in ("NETWORK_ERROR", "TASK_FAILED"), failed

    async def node2_back():
        node = nodes.get("node2")
        return node.online and node.address != old_address and node.report.get("pid")

    await wait_for(node2_back, "the nanny to restart node2", limit=120)
    status, env, _ = await api("GET", f"{API}/data/{sid}")
    assert locations(env["data"]) == {"node1:disk": "available"}
    status, env, _ = await api("GET", f"{API}/data/{cid}")
    assert locations(env["data"]) == {"node2:dram": "lost"}  # that memory died with the worker
    _, body, _ = await raw_content(jp_fetch, sid)
    assert body == source

    code, env, _ = await api("POST", f"{API}/data/{sid}/transfer",
                             body={"target_node": "node2", "target_device": "dram"})
    assert (await finished(api, env["data"]["task_id"]))["status"] == "completed"
