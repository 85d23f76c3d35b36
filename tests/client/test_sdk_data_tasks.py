"""The SDK's data pool and task queue against a real server process with two worker processes."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from gswarm_jupyter.client import AsyncGswarmClient, GswarmClient
from gswarm_jupyter.core.errors import Conflict, NotFound, RequestTimeout


@pytest.fixture
def client(live_env):
    with GswarmClient() as client:
        yield client


def test_bytes_go_in_and_come_back_identical(client):
    payload = bytes(range(256)) * 1000
    chunk = client.data.put("node1:dram", data=payload, type="intermediate")
    assert chunk["size"] == len(payload) and chunk["format"] == "bytes"
    assert chunk["locations"] == [{"device": "node1:dram", "status": "available"}]
    assert client.data.content(chunk["chunk_id"]) == payload
    assert client.data.get(chunk["chunk_id"])["metadata"]["access_count"] == 1
    assert chunk["chunk_id"] in [c["chunk_id"] for c in client.data.list(node="node1")]
    assert client.data.delete(chunk["chunk_id"])["deleted"] is True
    with pytest.raises(NotFound):
        client.data.get(chunk["chunk_id"])


def test_a_tensor_transfers_to_the_other_node_and_reads_back_identical(client):
    array = np.random.default_rng(7).standard_normal((64, 33)).astype(np.float32)
    chunk = client.data.put_array("node1:dram", array)
    assert chunk["metadata"]["shape"] == [64, 33] and chunk["metadata"]["dtype"] == "float32"
    task = client.data.transfer(chunk["chunk_id"], "node2", "dram")
    assert task["task_type"] == "transfer" and task["status"] in ("pending", "running", "completed")
    seen: list[int] = []
    done = client.tasks.wait(task["task_id"], timeout=60, poll=0.05,
                             progress=lambda t: seen.append(t["progress"]))
    assert done["status"] == "completed", done
    assert done["result"]["target"] == "node2:dram" and seen[-1] == 100
    record = client.data.get(chunk["chunk_id"])
    assert {loc["device"] for loc in record["locations"]} == {"node1:dram", "node2:dram"}
    back = client.data.get_array(chunk["chunk_id"])
    assert back.dtype == array.dtype and np.array_equal(back, array)

    with pytest.raises(Conflict) as info:
        client.tasks.cancel(task["task_id"])
    assert info.value.http_status == 409
    history = client.tasks.history(status="completed", limit=50)
    assert task["task_id"] in [t["task_id"] for t in history]
    assert client.tasks.queue()["completed"] >= 1


def test_waiting_past_the_timeout_is_a_request_timeout_and_cancel_stops_the_task(client):
    chunk = client.data.put("node1:dram", data=b"z" * 2_000_000)
    task = client.data.transfer(chunk["chunk_id"], "node2", "disk", bandwidth_limit=200_000)
    with pytest.raises(RequestTimeout):
        client.tasks.wait(task["task_id"], timeout=0.3)
    assert client.tasks.cancel(task["task_id"])["status"] == "cancelled"
    assert client.tasks.get(task["task_id"])["status"] == "cancelled"
    locations = client.data.get(chunk["chunk_id"])["locations"]
    assert locations == [{"device": "node1:dram", "status": "available"}]
    assert task["task_id"] in [t["task_id"] for t in client.tasks.list(status="cancelled")]


async def test_the_async_client_streams_task_events(live_env):
    async with AsyncGswarmClient() as client:
        chunk = await client.data.put("node1:dram", data=b"e" * 1000)
        events = client.tasks.events()
        first = asyncio.ensure_future(events.__anext__())
        submitted: list[str] = []
        while not first.done() and len(submitted) < 50:  # until the socket is open and hears one
            target = "disk" if len(submitted) % 2 else "dram"
            task = await client.data.transfer(chunk["chunk_id"], "node2", target)
            submitted.append(task["task_id"])
            await client.tasks.wait(task["task_id"], timeout=30)
            if not first.done():
                await client.data.delete(chunk["chunk_id"], force=True)
                chunk = await client.data.put("node1:dram", data=b"e" * 1000)
            await asyncio.wait({first}, timeout=0.2)
        event = await first
        await events.aclose()
        assert event["event"] == "task"
        assert event["data"]["task_id"] in submitted and event["data"]["task_type"] == "transfer"
        assert (await client.tasks.wait(submitted[-1], timeout=30))["status"] == "completed"
