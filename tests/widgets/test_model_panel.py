"""`ModelPanel`: the tier map follows the registry, the actions (picked from dropdowns of real
devices) start tasks, errors are shown until the user's next action."""

from __future__ import annotations

import pytest

from gswarm_jupyter.client import GswarmClient
from gswarm_jupyter.testing import free_port
from gswarm_jupyter.widgets import ModelPanel
from gswarm_jupyter.widgets.models import device_order

MLP = "builtin://mlp?in=8&hidden=16&out=4&seed={seed}"


@pytest.fixture
def client(live_env):
    with GswarmClient() as client:
        yield client


def test_the_tier_map_cells_reflect_the_registry(client):
    client.models.register("mp-a", MLP.format(seed=1), download_to="node1:disk")
    client.models.register("mp-b", MLP.format(seed=2), download_to="node2:dram")
    panel = ModelPanel(client, interval=60)
    try:
        assert panel.nodes == ["node1", "node2"]
        assert panel.devices[:2] == ["disk", "dram"]
        assert panel.chips("node1", "disk")["mp-a"] == "ready"
        assert panel.chips("node2", "dram")["mp-b"] == "ready"
        for cell, models in panel.cells.items():  # every chip is a copy the registry knows
            for name, status in models.items():
                if name in ("mp-a", "mp-b"):
                    assert (cell, status) in [(("disk", "node1"), "ready"),
                                              (("dram", "node2"), "ready")]
        assert "mp-a" in panel.grid.value and "mp-b" in panel.grid.value
        assert {"mp-a", "mp-b"} <= set(panel.model_names) and panel.error.value == ""
        targets = [value for _, value in panel.target.options]
        assert targets[:4] == ["node1:disk", "node1:dram", "node2:disk", "node2:dram"]
        panel.model.value = "mp-a"  # the sources are the picked model's copies
        assert [v for _, v in panel.source.options] == ["node1:disk", ""]
        assert panel.source.value == "node1:disk"  # never the whole model by default

        panel.delete("mp-b")  # no source: the whole model
        assert "mp-b" not in panel.model_names
        assert all("mp-b" not in models for models in panel.cells.values())
    finally:
        panel.close()
        client.models.delete("mp-a")


def test_the_copy_action_starts_a_task_and_the_chip_appears(client):
    client.models.register("mp-copy", MLP.format(seed=3), download_to="node1:disk")
    panel = ModelPanel(client, interval=60)
    try:
        panel.model.value = "mp-copy"
        panel.source.value, panel.target.value = "node1:disk", "node2:dram"
        before = {t["task_id"] for t in client.tasks.list(type="model_copy", limit=500)}
        panel.copy_button.click()
        started = [t for t in client.tasks.list(type="model_copy", limit=500)
                   if t["task_id"] not in before]
        assert [t["task_id"].startswith("model_copy-mp-copy") for t in started] == [True]
        assert panel.chips("node2", "dram")["mp-copy"] in ("copying", "ready")
        assert client.tasks.wait(started[0]["task_id"], timeout=60)["status"] == "completed"
        panel.refresh()
        assert panel.chips("node2", "dram")["mp-copy"] == "ready"
        assert panel.task_bars == {} and panel.progress.children == ()

        panel.source.value = "node2:dram"  # delete with a source drops that copy only
        panel.delete_button.click()
        assert "mp-copy" not in panel.chips("node2", "dram")
        assert panel.chips("node1", "disk")["mp-copy"] == "ready"
    finally:
        panel.close()
        client.models.delete("mp-copy", force=True)


def test_a_running_copy_shows_live_progress(client):
    config = "builtin://mlp?in=256&hidden=512&out=256&seed=5"  # about 1 MiB
    client.models.register("mp-slow", config, download_to="node1:dram")
    panel = ModelPanel(client, interval=60)
    try:
        task = client.models.copy("mp-slow", "node1:dram", "node2:dram", bandwidth_limit=200_000)
        panel.refresh()
        bar = panel.task_bars[task["task_id"]]
        assert list(panel.progress.children) == [bar]
        assert 0 <= bar.bar.value <= 100 and bar.status.value.split()[0] in ("pending", "running")
        assert "1 model tasks running" in panel.header.value
        assert panel.chips("node2", "dram")["mp-slow"] == "copying"
        client.tasks.cancel(task["task_id"])
        panel.refresh()
        assert panel.task_bars == {} and "mp-slow" not in panel.chips("node2", "dram")
    finally:
        panel.close()
        client.models.delete("mp-slow", force=True)


def test_refused_actions_are_shown_not_raised(client):
    client.models.register("mp-err", MLP.format(seed=4), download_to="node1:disk")
    panel = ModelPanel(client, interval=60)
    try:
        assert panel.copy("mp-err", "node2:disk", "node1:dram") is None
        assert "NOT_FOUND" in panel.error.value
        panel.refresh()
        assert "NOT_FOUND" in panel.error.value  # a refresh does not wipe it
        panel.target.value = "node2:disk"  # the user's next action does
        assert panel.error.value == ""
        assert panel.copy("mp-err", "node1:disk", "node9:dram") is None
        assert "NOT_FOUND" in panel.error.value and "node9" in panel.error.value
        assert panel.delete("mp-err", "node1:disk") is None  # the last copy
        assert "CONFLICT" in panel.error.value
        assert panel.move("mp-err", "nowhere", "node1:dram") is None
        assert "INVALID_REQUEST" in panel.error.value or "NOT_FOUND" in panel.error.value
        assert panel.chips("node1", "disk")["mp-err"] == "ready"
    finally:
        panel.close()
        client.models.delete("mp-err")


def test_an_unreachable_server_is_shown_not_raised():
    panel = ModelPanel(GswarmClient(f"http://127.0.0.1:{free_port()}/", "t"), interval=60)
    assert "NETWORK_ERROR" in panel.problem.value
    assert panel.cells == {} and panel.copy("m", "a", "b") is None
    assert "NETWORK_ERROR" in panel.error.value
    panel.close()


def test_devices_sort_by_tier_then_number():
    assert sorted(["vgpu0", "gpu10", "dram", "gpu2", "disk", "x"], key=device_order) == [
        "disk", "dram", "gpu2", "gpu10", "vgpu0", "x"]
