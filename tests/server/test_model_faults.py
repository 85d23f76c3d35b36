"""Model copies when a worker process dies: real worker processes (killed with SIGKILL)."""

from __future__ import annotations

import os
import signal

import pytest

from .data_helpers import finished, running, wait_for
from .model_helpers import API, MLP, checksum_on, locations, model, register


@pytest.fixture
def gswarm_config(gswarm_config):
    gswarm_config["local_processes"] = True
    return gswarm_config


async def test_killed_worker_fails_the_move_and_loses_only_memory_copies(api, gswarm_app):
    nodes = gswarm_app.context.runtime.nodes
    kept = await register(api, "kept", MLP.format(seed=1))
    for target in ("node2:dram", "node2:disk"):
        status, env, _ = await api("POST", f"{API}/models/kept/copy", body={
            "source_device": "node1:disk", "target_device": target})
        assert (await finished(api, env["data"]["task_id"]))["status"] == "completed"
    await register(api, "moving", MLP.format(seed=2))
    status, env, _ = await api("POST", f"{API}/models/moving/move", body={
        "source_device": "node1:disk", "target_device": "node2:dram", "bandwidth_limit": 100})
    assert status == 202, env
    task_id = env["data"]["task_id"]

    await running(api, task_id)
    old_address, pid = nodes.get("node2").address, nodes.get("node2").report["pid"]
    os.kill(pid, signal.SIGKILL)

    t = await finished(api, task_id)
    assert t["status"] == "failed" and t["error"]["code"] == "NETWORK_ERROR", t
    assert locations(await model(api, "moving")) == {"node1:disk": "ready"}  # source kept

    async def back():
        node = nodes.get("node2")
        return node.online and node.address != old_address

    await wait_for(back, "node2 to come back", limit=120)
    rec = await model(api, "kept")
    assert locations(rec) == {"node1:disk": "ready", "node2:dram": "lost",
                              "node2:disk": "ready"}
    assert rec["status"] == "ready"
    assert await checksum_on(gswarm_app, "kept", "node2:disk") == kept["checksum"]
    # a lost copy can be made again
    status, env, _ = await api("POST", f"{API}/models/kept/locations", body={"device": "node2:dram"})
    assert status == 202, env
    assert (await finished(api, env["data"]["task_id"]))["status"] == "completed"
    assert await checksum_on(gswarm_app, "kept", "node2:dram") == kept["checksum"]
