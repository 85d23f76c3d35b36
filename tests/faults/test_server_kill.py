"""The server process SIGKILLed (with its whole process group and its worker processes) during a
burst of registrations, uploads and queued tasks, then started again over the same data dir:
every write answered 2xx is there, nothing half-made is visible, no answered task is lost."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest

from gswarm_jupyter.testing import LiveServer

from .support import API, FINISHED, Api, kill_server, locations, wait_until

pytestmark = [pytest.mark.fault, pytest.mark.slow]

KiB = 1024
# Weights of ~5 MB: a registration takes long enough on its node to be cut in the middle.
MLP = "builtin://mlp?in=128&hidden=1024,1024&out=128&seed={seed}"
ANSWERED_BEFORE_KILL = 6  # writes of each kind answered before the kill (more are in flight)


@dataclass
class Answered:
    """What the killed server answered 2xx, by kind."""

    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> record
    chunks: dict[str, bytes] = field(default_factory=dict)  # chunk id -> bytes sent
    chunk_devices: dict[str, str] = field(default_factory=dict)  # chunk id -> device
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # task id -> answer
    lock: threading.Lock = field(default_factory=threading.Lock)

    def counts(self) -> tuple[int, int, int]:
        with self.lock:
            return len(self.models), len(self.chunks), len(self.tasks)


def writer(server: LiveServer, stop: threading.Event, work: Callable[[httpx.Client, int], None],
           errors: list[BaseException]) -> threading.Thread:
    """A thread doing `work(client, i)` for i = 0, 1, ... until `stop` or the server is gone."""

    def run() -> None:
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=60) as client:
            i = 0
            while not stop.is_set():
                try:
                    work(client, i)
                except httpx.TransportError:
                    return  # the server was killed under this request
                except BaseException as exc:
                    errors.append(exc)
                    return
                i += 1

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def created(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json()["data"]


def test_a_server_killed_mid_burst_keeps_what_it_answered(tmp_path):
    answered = Answered()
    rng = np.random.default_rng(7)
    payloads = [rng.bytes(256 * KiB + i) for i in range(64)]

    def register(node: str) -> Callable[[httpx.Client, int], None]:
        def post(client: httpx.Client, i: int) -> None:
            name = f"{node}-{i}"
            record = created(client.post(f"{API}/models", json={
                "model_name": name, "source_url": MLP.format(seed=i),
                "download_to": f"{node}:disk",
            }), 201)
            with answered.lock:
                answered.models[name] = record
        return post

    def upload(device: str) -> Callable[[httpx.Client, int], None]:
        def put(client: httpx.Client, i: int) -> None:
            data = payloads[i % len(payloads)]
            record = created(client.post(f"{API}/data", json={
                "data": base64.b64encode(data).decode(), "format": "bytes", "device": device,
            }), 201)
            with answered.lock:
                answered.chunks[record["chunk_id"]] = data
                answered.chunk_devices[record["chunk_id"]] = device
        return put

    def queue(client: httpx.Client, i: int) -> None:
        """A chunk transfer or a model copy, paced: some run, most wait in the queue when the
        server dies."""
        if i % 2:
            name = f"queued-{i}"
            record = created(client.post(f"{API}/models", json={
                "model_name": name, "source_url": MLP.format(seed=i), "download_to": "node1:disk",
            }), 201)
            with answered.lock:
                answered.models[name] = record
            task = created(client.post(f"{API}/models/{name}/copy", json={
                "source_device": "node1:disk", "target_device": "node2:disk",
                "bandwidth_limit": 2048 * KiB,
            }), 202)
        else:
            data = payloads[i % len(payloads)]
            chunk = created(client.post(f"{API}/data", json={
                "data": base64.b64encode(data).decode(), "format": "bytes",
                "device": "node1:disk",
            }), 201)["chunk_id"]
            with answered.lock:
                answered.chunks[chunk] = data
                answered.chunk_devices[chunk] = "node1:disk"
            task = created(client.post(f"{API}/data/{chunk}/transfer", json={
                "target_node": "node2", "target_device": "disk", "bandwidth_limit": 128 * KiB,
            }), 202)
        with answered.lock:
            answered.tasks[task["task_id"]] = task

    server = LiveServer(tmp_path, nodes=2, own_session=True).start()
    try:
        stop = threading.Event()
        errors: list[BaseException] = []
        works = (register("node1"), register("node2"), upload("node1:disk"),
                 upload("node2:disk"), upload("node2:dram"), queue)
        threads = [writer(server, stop, work, errors) for work in works]
        wait_until(lambda: errors or min(answered.counts()) >= ANSWERED_BEFORE_KILL,
                   "the burst to be under way", limit=180)
        assert not errors, errors
        kill_server(server)  # writers still running: some requests die in flight
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors
    finally:
        server.stop()

    with LiveServer(tmp_path, nodes=2) as again:  # the same data dir (root/data)
        api = Api(again)
        try:
            check_models(api, answered)
            check_chunks(api, answered)
            check_tasks(api, answered)
        finally:
            api.close()


def check_models(api: Api, answered: Answered) -> None:
    listed = {m["model_name"]: m for m in api.models()}
    assert set(answered.models) <= set(listed), sorted(set(answered.models) - set(listed))
    for name, record in listed.items():
        where = locations(record)
        assert "ready" in where.values(), (name, record)  # none half-made
        # a copy still being written belongs to a task that runs now (checked in check_tasks)
        assert set(where.values()) <= {"ready", "copying"}, (name, record)
        assert record["checksum"] and record["model_size"], record
    for name, before in answered.models.items():
        after = listed[name]
        assert after["checksum"] == before["checksum"], (before, after)
        assert locations(before).items() <= locations(after).items(), (before, after)


def check_chunks(api: Api, answered: Answered) -> None:
    listed = {c["chunk_id"]: c for c in api.chunks()}
    assert set(answered.chunks) <= set(listed), sorted(set(answered.chunks) - set(listed))
    for chunk_id, record in listed.items():
        where = locations(record)
        assert where, record  # a chunk without any copy is a half-made upload
        for device, status in where.items():
            memory = device.endswith(":dram")
            # memory copies died with the workers; copies still being written are gone too
            assert status == ("lost" if memory else "available") or (
                status == "copying" and device == "node2:disk"), (chunk_id, record)
        if "available" in where.values():
            content = api.content(chunk_id)
            assert chunk_id not in answered.chunks or content == answered.chunks[chunk_id]
    for chunk_id, device in answered.chunk_devices.items():
        expected = "lost" if device.endswith(":dram") else "available"
        assert locations(listed[chunk_id])[device] == expected, listed[chunk_id]


def check_tasks(api: Api, answered: Answered) -> None:
    cut_or_waiting = 0
    for task_id in answered.tasks:
        task = api.task(task_id)  # a task answered 202 is never lost
        assert task["status"] in ("pending", "running", *FINISHED), task
        if task["status"] == "failed":  # it was running when the server died
            assert task["error"]["details"]["reason"] == "interrupted", task
        cut_or_waiting += task["status"] != "completed"
    assert cut_or_waiting, "every task had finished before the kill: nothing was tested"
    for task_id in answered.tasks:
        task = api.finished(task_id, limit=300)
        assert task["status"] in ("completed", "failed"), task
        if task["task_type"] == "transfer":
            [chunk_id] = task["resources"]["chunks"]
            where = locations(api.ok("GET", f"{API}/data/{chunk_id}"))
        else:
            [name] = task["resources"]["models"]
            where = locations(api.ok("GET", f"{API}/models/{name}"))
        target = "available" if task["task_type"] == "transfer" else "ready"
        if task["status"] == "completed":
            assert where.get("node2:disk") == target, (task, where)
        else:
            assert "node2:disk" not in where, (task, where)  # no half-made copy
    states = {s for c in [*api.chunks(), *api.models()] for s in locations(c).values()}
    assert "copying" not in states, states
