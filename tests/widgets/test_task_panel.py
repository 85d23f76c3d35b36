"""`TaskPanel`: its rows follow the queue, Cancel cancels, it refreshes itself, closing stops it."""

from __future__ import annotations

import pytest

from gswarm_jupyter.client import GswarmClient
from gswarm_jupyter.testing import free_port
from gswarm_jupyter.widgets import TaskPanel


@pytest.fixture
def client(live_env):
    with GswarmClient() as client:
        yield client


def test_a_refresh_draws_one_row_per_task_with_its_progress(client):
    chunk = client.data.put("node1:dram", data=b"p" * 10_000)
    task = client.data.transfer(chunk["chunk_id"], "node2", "dram")
    client.tasks.wait(task["task_id"], timeout=60)
    panel = TaskPanel(client, interval=60)
    try:
        row = panel.rows[task["task_id"]]
        assert panel.statuses[task["task_id"]] == "completed"
        assert (row.kind.value, row.bar.value, row.bar.bar_style) == ("transfer", 100, "success")
        assert row.cancel.disabled and row.cancel.layout.visibility == "hidden"
        assert list(panel.rows) == [t["task_id"] for t in client.tasks.list(limit=20)]
        assert "completed" in panel.header.value and panel.error.value == ""
    finally:
        panel.close()


def test_the_cancel_button_cancels_a_running_task(client):
    chunk = client.data.put("node1:dram", data=b"c" * 2_000_000)
    task = client.data.transfer(chunk["chunk_id"], "node2", "dram", bandwidth_limit=100_000)
    panel = TaskPanel(client, interval=60)
    try:
        row = panel.rows[task["task_id"]]
        assert panel.statuses[task["task_id"]] in ("pending", "running")
        assert not row.cancel.disabled
        row.cancel.click()
        assert client.tasks.get(task["task_id"])["status"] == "cancelled"
        assert panel.statuses[task["task_id"]] == "cancelled" and row.cancel.disabled
        assert client.data.get(chunk["chunk_id"])["locations"] == [
            {"device": "node1:dram", "status": "available"}
        ]
        panel.cancel(task["task_id"])  # a second cancel is refused: shown, not raised
        assert "CONFLICT" in panel.error.value
    finally:
        panel.close()


def test_an_unreachable_server_is_shown_not_raised():
    panel = TaskPanel(GswarmClient(f"http://127.0.0.1:{free_port()}/", "t"), interval=60)
    assert "NETWORK_ERROR" in panel.error.value
    assert panel.rows == {}
    panel.close()
