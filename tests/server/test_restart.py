"""A real server process stopped and started again over the same data dir keeps what it knew:
chunks and models with their disk copies, task history; memory copies died with their workers."""

from __future__ import annotations

import numpy as np

from gswarm_jupyter.client import GswarmClient
from gswarm_jupyter.testing import LiveServer


def statuses(locations: list[dict]) -> dict[str, str]:
    return {loc["device"]: loc["status"] for loc in locations}


def test_state_survives_a_server_restart(tmp_path):
    array = np.arange(4096, dtype=np.float32).reshape(64, 64)
    with LiveServer(tmp_path, nodes=2) as server, GswarmClient(server.url, server.token) as client:
        on_disk = client.data.put_array("node1:disk", array)["chunk_id"]
        in_memory = client.data.put("node2:dram", data=b"gone after a restart")["chunk_id"]
        task = client.data.transfer(on_disk, "node2", "disk")
        assert client.tasks.wait(task["task_id"], timeout=60)["status"] == "completed"
        client.models.register("kept", "builtin://mlp?in=8&hidden=16&out=4&seed=0",
                               download_to="node1:disk")
        copy = client.models.copy("kept", "node1:disk", "node2:dram")
        assert client.tasks.wait(copy["task_id"], timeout=60)["status"] == "completed"
        checksum = client.models.get("kept")["checksum"]

    with LiveServer(tmp_path, nodes=2) as server, GswarmClient(server.url, server.token) as client:
        chunks = {c["chunk_id"]: c for c in client.data.list()}
        assert set(chunks) == {on_disk, in_memory}
        assert statuses(chunks[on_disk]["locations"]) == {
            "node1:disk": "available", "node2:disk": "available"
        }
        assert statuses(chunks[in_memory]["locations"]) == {"node2:dram": "lost"}
        assert np.array_equal(client.data.get_array(on_disk), array)

        model = client.models.get("kept")
        assert model["checksum"] == checksum
        assert statuses(model["locations"]) == {"node1:disk": "ready", "node2:dram": "lost"}

        history = client.tasks.history()
        assert task["task_id"] in {t["task_id"] for t in history}
