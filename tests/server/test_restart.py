"""A real server process stopped and started again over the same data dir keeps what it knew:
chunks and models with their disk copies, task history, services (loaded again), sessions with
their pins, and resource allocations that have not ended (their bytes still withheld); memory
copies died with their workers."""

from __future__ import annotations

import json
import sqlite3
import time

import numpy as np
import pytest

from gswarm_jupyter.client import GswarmClient
from gswarm_jupyter.cluster.training import payload
from gswarm_jupyter.core.errors import (
    Conflict,
    InsufficientMemory,
    NotFound,
    ResourceUnavailable,
)
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
        reserved = client.compute.reserve(64 * 2**20, 600, device="node1:dram", user_id="alice")
        ending = client.compute.reserve(2**20, 0.5, device="node1:dram", user_id="bob")

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

        [alloc] = client.compute.allocations()  # the one that ended while the server was down: gone
        assert (alloc["allocation_id"], alloc["end_time"], alloc["owner"]) == (
            reserved["allocation_id"], reserved["end_time"], "alice")
        with pytest.raises(NotFound):
            client.compute.allocation(ending["allocation_id"])
        available = client.node("node1")["devices"]["dram"]["available"]
        with pytest.raises(InsufficientMemory) as refused:
            client.compute.reserve(2**50, 60, device="node1:dram")
        # Still withheld: 64 MiB off what dram has free (the worker's own memory moves a little).
        assert refused.value.details["available"] <= available - 60 * 2**20
        assert client.compute.free(alloc["allocation_id"])["status"] == "freed"


def wait_for_service(client: GswarmClient, service_id: str, status: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        service = client.services.get(service_id)
        if service["status"] == status or time.monotonic() > deadline:
            return service
        time.sleep(0.3)


def test_services_and_session_pins_survive_a_server_restart(tmp_path):
    rows = np.linspace(-1, 1, 16, dtype=np.float32).reshape(2, 8).tolist()
    with LiveServer(tmp_path, nodes=2) as server, GswarmClient(server.url, server.token) as client:
        client.models.register("kept", "builtin://mlp?in=8&hidden=16&out=4&seed=1",
                               download_to="node1:disk")
        kept = client.compute.load("kept", nodes=["node1", "node2"])
        before = client.compute.infer("kept", rows)  # round robin: replica 0, on node1
        session = client.compute.session_start("ana", "kept", ttl_seconds=3600)
        pinned = client.compute.infer("kept", rows, session_id=session["session_id"])
        assert pinned["node"] == "node2"  # the next turn; a fresh balancer would start at node1
        # A model whose only copy is in a worker's memory: gone with the workers.
        client.models.register("fleeting", "builtin://mlp?in=8&hidden=8&out=2&seed=2",
                               download_to="node1:dram")
        fleeting = client.compute.load("fleeting", device="node1:dram")

    with LiveServer(tmp_path, nodes=2) as server, GswarmClient(server.url, server.token) as client:
        service = wait_for_service(client, kept["service_id"], "running")
        assert service["status"] == "running", service
        assert [(r["replica_id"], r["node"]) for r in service["replicas"]] == [
            (r["replica_id"], r["node"]) for r in kept["replicas"]]

        again = client.compute.infer("kept", rows, session_id=session["session_id"])
        assert (again["replica_id"], again["node"]) == (pinned["replica_id"], "node2")
        assert np.allclose(again["output_data"], before["output_data"])
        with pytest.raises(Conflict):  # the session still pins the model
            client.compute.unload("kept")

        gone = wait_for_service(client, fleeting["service_id"], "failed")
        assert gone["status"] == "failed", gone
        assert "no copy" in gone["reason"] and gone["replicas"][0]["error"] in gone["reason"]
        with pytest.raises(ResourceUnavailable):
            client.compute.infer("fleeting", rows)
        loaded = {m["model_id"]: m["status"] for m in client.compute.loaded()}
        assert loaded == {"kept": "loaded", "fleeting": "failed"}

        # Service numbers go on from the stored ones; a failed service stops like any other.
        extra = client.services.start("kept", nodes=["node1"])
        assert extra["service_id"] not in {kept["service_id"], fleeting["service_id"]}
        assert client.services.stop(fleeting["service_id"])["status"] == "stopped"
        assert {s["service_id"] for s in client.services.list()} == {
            kept["service_id"], extra["service_id"]}


def test_a_queued_training_keeps_its_rows_across_a_restart(tmp_path):
    """Its inline rows, stored with the task, train after the restart exactly as when sent."""
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((64, 8))  # float64: the server keeps the float32 its kernel reads
    labels = (rows[:, 0] > 0).astype(int)
    fields = {"epochs": 3, "learning_rate": 0.01, "update_model": False, "seed": 0,
              "hyperparameters": {"batch_size": 16}}
    with LiveServer(tmp_path, nodes=1) as server, GswarmClient(server.url, server.token) as client:
        client.models.register("learner", "builtin://mlp?in=8&hidden=16&out=2&seed=0")
        holding = client.compute.train_async("learner", rows[:8], labels[:8], epochs=100_000,
                                             hyperparameters={"batch_size": 4})
        deadline = time.monotonic() + 60
        while client.compute.training(holding["request_id"])["status"] != "running":
            assert time.monotonic() < deadline, "the first training never started"
            time.sleep(0.1)
        queued = client.compute.train_async("learner", rows, labels.tolist(), **fields)
        assert client.compute.training(queued["request_id"])["status"] == "queued"
    [db_path] = tmp_path.rglob("*.sqlite3")
    with sqlite3.connect(db_path) as db:  # the rows as the kernel reads them, tagged arrays
        [(stored,)] = db.execute("SELECT body FROM task_payloads WHERE task_id = ?",
                                 (queued["task_id"],)).fetchall()
    back = payload.decode(json.loads(stored))
    assert back["training_data"].dtype == np.float32
    assert back["training_data"].tobytes() == rows.astype(np.float32).tobytes()

    with LiveServer(tmp_path, nodes=1) as server, GswarmClient(server.url, server.token) as client:
        done = client.tasks.wait(queued["task_id"], timeout=120)
        assert done["status"] == "completed", done
        again = client.compute.train("learner", rows, labels.tolist(), **fields)
        assert done["result"]["epochs_completed"] == 3
        assert done["result"]["loss_history"] == again["loss_history"]
