"""The SDK's model registry and placement against a real server process with two worker processes."""

from __future__ import annotations

import asyncio

import pytest

from gswarm_jupyter.client import AsyncGswarmClient, GswarmClient
from gswarm_jupyter.core.errors import Conflict, InvalidRequest, ModelNotFound, NotFound

MLP = "builtin://mlp?in=8&hidden=16&out=4&seed={seed}"


@pytest.fixture
def client(live_env):
    with GswarmClient() as client:
        yield client


def test_register_copy_to_the_other_node_and_drop_the_copy(client):
    record = client.models.register("sdk-mlp", MLP.format(seed=1), metadata={"owner": "sdk"})
    assert record["model_name"] == "sdk-mlp" and record["status"] == "ready"
    assert record["model_type"] == "mlp" and record["format"] == "safetensors"
    assert record["metadata"]["owner"] == "sdk" and record["model_size"] > 0
    first = record["locations"][0]["device"]
    assert first.endswith(":disk")

    task = client.models.copy("sdk-mlp", first, "node2:dram")
    assert task["task_type"] == "model_copy" and task["status"] in ("pending", "running", "completed")
    done = client.tasks.wait(task["task_id"], timeout=60)
    assert done["status"] == "completed", done

    where = {loc["device"]: loc["status"] for loc in client.models.locations("sdk-mlp")}
    assert where == {first: "ready", "node2:dram": "ready"}
    assert "sdk-mlp" in [m["model_name"] for m in client.models.list(location="node2:dram")]
    assert "sdk-mlp" in [m["model_name"] for m in client.models.list(type="mlp", status="ready")]
    on_node2 = [m for m in client.models.node_models("node2") if m["model_name"] == "sdk-mlp"]
    assert [(m["device"], m["status"]) for m in on_node2] == [("dram", "ready")]

    dropped = client.models.delete("sdk-mlp", device="node2:dram")
    assert dropped["device"] == "node2:dram" and dropped["deleted"] is True
    assert [loc["device"] for loc in client.models.get("sdk-mlp")["locations"]] == [first]
    with pytest.raises(Conflict):  # the last copy is never dropped
        client.models.drop_location("sdk-mlp", first)
    gone = client.models.delete("sdk-mlp")
    assert gone["deleted"] is True and gone["locations_removed"] == [first]
    with pytest.raises(ModelNotFound):
        client.models.get("sdk-mlp")


def test_add_location_move_and_drop_location(client):
    client.models.register("sdk-move", MLP.format(seed=2), download_to="node1:disk")
    added = client.models.add_location("sdk-move", "node1:dram")
    assert client.tasks.wait(added["task_id"], timeout=60)["status"] == "completed"
    moved = client.models.move("sdk-move", "node1:dram", "node2:dram")
    assert moved["task_type"] == "model_move"
    assert client.tasks.wait(moved["task_id"], timeout=60)["status"] == "completed"
    assert {loc["device"] for loc in client.models.locations("sdk-move")} == {
        "node1:disk", "node2:dram"}
    dropped = client.models.drop_location("sdk-move", "node2:dram")
    assert [loc["device"] for loc in dropped["locations"]] == ["node1:disk"]
    client.models.delete("sdk-move")


def test_errors_arrive_as_core_exceptions(client):
    client.models.register("sdk-dup", MLP.format(seed=3))
    try:
        with pytest.raises(Conflict) as info:
            client.models.register("sdk-dup", MLP.format(seed=3))
        assert info.value.http_status == 409 and info.value.details["model_name"] == "sdk-dup"
        with pytest.raises(NotFound):  # no copy there to copy from
            client.models.copy("sdk-dup", "node2:gpu7", "node1:dram")
        with pytest.raises(InvalidRequest):
            client.models.register("bad name!", MLP.format(seed=3))
    finally:
        client.models.delete("sdk-dup")
    with pytest.raises(ModelNotFound) as missing:
        client.models.locations("sdk-no-such-model")
    assert missing.value.http_status == 404
    with pytest.raises(ModelNotFound):
        client.models.delete("sdk-no-such-model")


def test_async_client_registers_and_streams_model_events(live_env):
    async def scenario() -> list[dict]:
        async with AsyncGswarmClient() as client:
            seen: list[dict] = []

            async def listen() -> None:
                async for event in client.models.events():
                    if event["data"].get("model_name") == "sdk-async":
                        seen.append(event)
                        if event["data"]["change"] == "deleted":
                            return

            listener = asyncio.ensure_future(listen())
            await asyncio.sleep(0.5)  # the socket is open before the changes happen
            record = await client.models.register("sdk-async", MLP.format(seed=4))
            assert record["status"] == "ready"
            assert [m["model_name"] for m in await client.models.list()].count("sdk-async") == 1
            await client.models.delete("sdk-async")
            await asyncio.wait_for(listener, 30)
            return seen

    seen = asyncio.run(scenario())
    changes = [e["data"]["change"] for e in seen]
    assert {e["event"] for e in seen} == {"model"}
    assert changes[0] == "registered" and changes[-1] == "deleted"
    assert "location_added" in changes
