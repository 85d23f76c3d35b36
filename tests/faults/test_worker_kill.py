"""A worker process SIGKILLed in the middle of work, on a real server process with real worker
processes; then the truth: the source copy stays readable, the registry lists no half-made copy
and no live copy in the dead worker's memory, the task fails naming the lost node, and the work
can be done again once the node's nanny has started a new worker under the same name."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

from gswarm_jupyter.testing import LiveServer

from .support import (
    API,
    COMPUTE,
    Api,
    kill_worker,
    live_memory_copies,
    locations,
    wait_back,
    wait_until,
)

pytestmark = [pytest.mark.fault, pytest.mark.slow]

MiB = 1024 * 1024
# Slow enough to be killed mid-way: ~21 MB of weights and 8 MiB of chunk paced to a few MB/s.
BIG_MLP = "builtin://mlp?in=256&hidden=2048,2048&out=256&seed={seed}"
SMALL_MLP = "builtin://mlp?in=8&hidden=16&out=4&seed={seed}"
GPT = "builtin://gpt?vocab=256&d_model=128&layers=2&heads=4&context=2048&seed=3"


# Dask's SpecCluster closes a lost worker's nanny when no worker of that name is back within this
# time (15 s by default); at 1 s, shorter than a worker's start, every kill here would leave its
# node down for good unless the embedded cluster keeps its nannies.
LOST_WORKER_TIMEOUT = {"DASK_DISTRIBUTED__DEPLOY__LOST_WORKER_TIMEOUT": "1s"}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    with LiveServer(tmp_path_factory.mktemp("faults-worker"), nodes=2,
                    extra_env=LOST_WORKER_TIMEOUT) as live:
        yield live


@pytest.fixture
def api(server) -> Iterator[Api]:
    client = Api(server)
    # every test starts from a whole cluster (the previous one killed a worker)
    wait_until(lambda: client.ok("GET", f"{API}/health")["nodes_online"] == 2,
               "both nodes online", limit=180, every=0.3)
    yield client
    client.close()


def running_with_progress(api: Api, task_id: str) -> bool:
    task = api.task(task_id)
    assert task["status"] in ("pending", "running"), task
    return task["status"] == "running" and task["progress"] > 0


def assert_lost_node_error(error: dict, node: str) -> None:
    assert error["code"] == "NETWORK_ERROR", error
    assert node in error["message"], error


def register(api: Api, name: str, source: str, device: str = "node1:disk") -> dict:
    return api.ok("POST", f"{API}/models",
                  {"model_name": name, "source_url": source, "download_to": device}, expect=201)


def copy_model(api: Api, name: str, source: str, target: str, **extra) -> dict:
    return api.ok("POST", f"{API}/models/{name}/copy",
                  {"source_device": source, "target_device": target, **extra}, expect=202)


def test_a_chunk_transfer_whose_target_worker_dies(api, server):
    data = np.random.default_rng(1).bytes(8 * MiB)
    chunk = api.put_bytes(data, "node1:disk")["chunk_id"]
    resident = api.put_bytes(b"in node2's memory", "node2:dram")["chunk_id"]
    task_id = api.ok("POST", f"{API}/data/{chunk}/transfer", {
        "target_node": "node2", "target_device": "disk", "bandwidth_limit": 2 * MiB,
    }, expect=202)["task_id"]
    wait_until(lambda: running_with_progress(api, task_id), "the transfer to be under way")

    killed = kill_worker(api, "node2")

    task = api.finished(task_id)
    assert task["status"] == "failed", task
    assert_lost_node_error(task["error"], "node2")
    assert live_memory_copies(api, "node2") == []
    record = api.ok("GET", f"{API}/data/{chunk}")
    assert locations(record) == {"node1:disk": "available"}  # no half-made target
    assert api.content(chunk) == data  # the source stays readable

    wait_back(api, killed)
    assert live_memory_copies(api, "node2") == []
    assert locations(api.ok("GET", f"{API}/data/{resident}")) == {"node2:dram": "lost"}
    again = api.ok("POST", f"{API}/data/{chunk}/transfer",
                   {"target_node": "node2", "target_device": "disk"}, expect=202)
    assert api.finished(again["task_id"])["status"] == "completed"
    assert locations(api.ok("GET", f"{API}/data/{chunk}")) == {
        "node1:disk": "available", "node2:disk": "available"}
    # the new worker dropped what the killed one had half-written
    assert list((server.data_dir / "nodes" / "node2").rglob("*.part")) == []
    api.ok("DELETE", f"{API}/data/{chunk}")
    api.ok("DELETE", f"{API}/data/{resident}")


def test_a_model_copy_whose_target_worker_dies(api):
    big = register(api, "big", BIG_MLP.format(seed=1))
    register(api, "resident", SMALL_MLP.format(seed=2))
    done = copy_model(api, "resident", "node1:disk", "node2:dram")
    assert api.finished(done["task_id"])["status"] == "completed"
    task_id = copy_model(api, "big", "node1:disk", "node2:dram",
                         bandwidth_limit=2 * MiB)["task_id"]
    wait_until(lambda: running_with_progress(api, task_id), "the copy to be under way")

    killed = kill_worker(api, "node2")

    task = api.finished(task_id)
    assert task["status"] == "failed", task
    assert_lost_node_error(task["error"], "node2")
    assert live_memory_copies(api, "node2") == []
    assert locations(api.ok("GET", f"{API}/models/big")) == {"node1:disk": "ready"}

    wait_back(api, killed)
    assert live_memory_copies(api, "node2") == []
    assert locations(api.ok("GET", f"{API}/models/resident"))["node2:dram"] == "lost"
    # the source is whole: a copy checked against the registered checksum succeeds
    again = copy_model(api, "big", "node1:disk", "node2:dram", verify_checksum=True)
    assert api.finished(again["task_id"])["status"] == "completed"
    record = api.ok("GET", f"{API}/models/big")
    assert locations(record) == {"node1:disk": "ready", "node2:dram": "ready"}
    assert record["checksum"] == big["checksum"]
    for name in ("big", "resident"):
        api.ok("DELETE", f"{API}/models/{name}")


def test_a_served_request_whose_replica_worker_dies(api):
    register(api, "talker", GPT)
    service = api.ok("POST", f"{API}/services",
                     {"model_name": "talker", "nodes": ["node2"], "device": "dram"}, expect=201)
    sid = service["service_id"]
    prompt = {"model_id": "talker", "input_data": [[1, 2, 3]],
              "options": {"max_tokens": 8, "seed": 0}}
    before = api.ok("POST", f"{COMPUTE}/inference", prompt)
    answers: list[tuple[int, dict]] = []
    slow = {**prompt, "options": {"max_tokens": 2000, "seed": 0}}
    request = threading.Thread(
        target=lambda: answers.append(api.call("POST", f"{COMPUTE}/inference", slow)))
    request.start()

    def in_flight() -> bool:
        replica = api.ok("GET", f"{API}/services/{sid}")["replicas"][0]
        return replica["active_requests"] == 1

    wait_until(in_flight, "the request to reach its replica")
    killed = kill_worker(api, "node2")
    request.join(timeout=120)
    assert not request.is_alive()

    [(status, envelope)] = answers
    assert status in (502, 503), envelope
    assert envelope["error"]["code"] in ("NETWORK_ERROR", "RESOURCE_UNAVAILABLE"), envelope
    assert "node2" in envelope["error"]["message"], envelope
    record = api.ok("GET", f"{API}/services/{sid}")
    [replica] = record["replicas"]
    assert record["status"] == "failed" and replica["status"] == "failed", record
    assert "worker lost" in replica["error"] and "node2" in record["reason"], record

    wait_back(api, killed)
    record = wait_until(lambda: _if_running(api.ok("GET", f"{API}/services/{sid}")),
                        "the replica to be loaded again", limit=180, every=0.3)
    [replica] = record["replicas"]
    assert replica["node"] == "node2" and replica["error"] is None, record
    after = api.ok("POST", f"{COMPUTE}/inference", prompt)
    assert after["node"] == "node2"
    assert after["output_data"] == before["output_data"]
    api.ok("DELETE", f"{API}/services/{sid}")
    api.ok("DELETE", f"{API}/models/talker")


def test_a_training_whose_worker_dies(api):
    model = register(api, "learner", SMALL_MLP.format(seed=4))
    rng = np.random.default_rng(4)
    rows = rng.standard_normal((256, 8)).round(3).tolist()
    labels = rng.standard_normal((256, 4)).round(3).tolist()
    accepted = api.ok("POST", f"{COMPUTE}/training/async", {
        "model_id": "learner", "training_data": rows, "labels": labels, "epochs": 100_000,
        "loss_function": "mse", "device": "node2:dram",
        "hyperparameters": {"batch_size": 8},
    }, expect=202)
    rid = accepted["request_id"]

    def training() -> bool:
        status = api.ok("GET", f"{COMPUTE}/training/{rid}")
        assert status["status"] in ("queued", "running"), status
        return status["status"] == "running" and status["epochs_completed"] > 0

    wait_until(training, "the training to be under way")
    killed = kill_worker(api, "node2")

    status = wait_until(lambda: _if_ended(api.ok("GET", f"{COMPUTE}/training/{rid}")),
                        "the training to end")
    assert status["status"] == "failed", status
    assert_lost_node_error(status["error"], "node2")
    record = api.ok("GET", f"{API}/models/learner")
    assert record["version"] == 1 and record["checksum"] == model["checksum"], record
    assert locations(record) == {"node1:disk": "ready"}  # no new version half-written

    wait_back(api, killed)
    done = api.ok("POST", f"{COMPUTE}/training", {
        "model_id": "learner", "training_data": rows[:16], "labels": labels[:16], "epochs": 1,
        "loss_function": "mse", "device": "node2:dram",
    })
    assert done["model_updated"] is True and done["version"] == 2, done
    api.ok("DELETE", f"{API}/models/learner")


def _if_running(service: dict) -> dict | None:
    return service if service["status"] == "running" else None


def _if_ended(training: dict) -> dict | None:
    return training if training["status"] not in ("queued", "running") else None
