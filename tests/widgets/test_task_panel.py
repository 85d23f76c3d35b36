"""`TaskPanel`: its rows follow the queue (filtered by status and type, with durations), Cancel
cancels, it refreshes itself, closing stops it."""

from __future__ import annotations

import pytest

from gswarm_jupyter.client import GswarmClient
from gswarm_jupyter.testing import free_port
from gswarm_jupyter.widgets import TaskPanel
from gswarm_jupyter.widgets.tasks import duration, format_seconds


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
        assert row.took.value.endswith(" s")
        assert row.cancel.disabled and row.cancel.layout.visibility == "hidden"
        assert list(panel.rows) == [t["task_id"] for t in client.tasks.list(limit=20)]
        assert "completed" in panel.header.value and panel.error.value == ""
        assert panel.problem.value == ""
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
        panel.refresh()
        assert "CONFLICT" in panel.error.value  # shown until the user's next action
        panel.status_filter.value = "cancelled"
        assert panel.error.value == ""
    finally:
        panel.close()


def test_the_filters_show_only_tasks_of_that_status_and_type(client):
    chunk = client.data.put("node1:dram", data=b"f" * 10_000)
    done = client.tasks.wait(client.data.transfer(chunk["chunk_id"], "node2", "dram")["task_id"],
                             timeout=60)
    slow = client.data.transfer(chunk["chunk_id"], "node2", "disk", bandwidth_limit=500)  # ~20 s
    panel = TaskPanel(client, interval=60, limit=500)
    try:
        assert {done["task_id"], slow["task_id"]} <= set(panel.rows)
        assert "transfer" in panel.types
        panel.status_filter.value = "running"  # as the dropdown does
        assert slow["task_id"] in panel.rows and done["task_id"] not in panel.rows
        assert set(panel.statuses.values()) <= {"running"}
        panel.filter(status="completed", task_type="transfer")
        assert done["task_id"] in panel.rows and slow["task_id"] not in panel.rows
        assert {row.kind.value for row in panel.rows.values()} == {"transfer"}
        panel.filter(task_type="no_such_type")
        assert panel.rows == {}
    finally:
        panel.close()
        client.tasks.cancel(slow["task_id"])
        client.data.delete(chunk["chunk_id"], force=True)


def test_durations_say_how_long_a_task_ran_or_waited():
    assert format_seconds(0.42) == "0.4 s" and format_seconds(75) == "1 min 15 s"
    assert format_seconds(7300) == "2 h 1 min"
    done = {"status": "completed", "created_at": 0.0, "started_at": 10.0, "completed_at": 12.5}
    assert duration(done, now=100.0) == "2.5 s"
    running = {"status": "running", "created_at": 0.0, "started_at": 10.0, "completed_at": None}
    assert duration(running, now=70.0) == "1 min 0 s"
    pending = {"status": "pending", "created_at": 5.0, "started_at": None, "completed_at": None}
    assert duration(pending, now=8.0) == "waiting 3.0 s"


def test_an_unreachable_server_is_shown_not_raised():
    panel = TaskPanel(GswarmClient(f"http://127.0.0.1:{free_port()}/", "t"), interval=60)
    assert "NETWORK_ERROR" in panel.problem.value
    assert panel.rows == {}
    panel.close()
