"""`%gswarm data`, `tasks` and `wait` through IPython's magic machinery, against a real server."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from gswarm_jupyter.magics.display import Table


def test_data_lists_the_chunks_with_their_locations(ip, client):
    chunk = client.data.put("node2:dram", data=b"m" * 3000, type="output")
    table = ip.run_line_magic("gswarm", "data --node node2 -o kept")
    assert isinstance(table, Table)
    line = next(row for row in repr(table).splitlines() if chunk["chunk_id"] in row)
    assert line.split() == [chunk["chunk_id"], "output", "bytes", "2.9", "KiB", "node2:dram"]
    assert chunk["chunk_id"] in [c["chunk_id"] for c in ip.user_ns["kept"]]
    assert all(
        any(loc["device"].startswith("node2:") for loc in c["locations"]) for c in ip.user_ns["kept"]
    )
    assert "<table>" in table._repr_html_()


def test_tasks_lists_the_queue_filtered_by_status(ip, client):
    chunk = client.data.put("node1:dram", data=b"t" * 1000)
    task = client.data.transfer(chunk["chunk_id"], "node2", "dram")
    client.tasks.wait(task["task_id"], timeout=60)
    table = ip.run_line_magic("gswarm", "tasks --status completed -o kept")
    text = repr(table)
    assert text.splitlines()[1].split() == ["id", "type", "priority", "status", "progress", "created"]
    line = next(row for row in text.splitlines() if task["task_id"] in row)
    assert line.split()[:5] == [task["task_id"], "transfer", "normal", "completed", "100%"]
    assert {t["status"] for t in ip.user_ns["kept"]} == {"completed"}


def test_wait_draws_progress_until_the_task_ends_and_keeps_its_record(ip, client, capsys):
    chunk = client.data.put("node1:dram", data=b"w" * 1_000_000)
    task = client.data.transfer(chunk["chunk_id"], "node2", "disk", bandwidth_limit=2_000_000)
    assert ip.run_line_magic("gswarm", f"wait {task['task_id']} --poll 0.05 -o kept") is None
    out, err = capsys.readouterr()
    assert out.startswith(f"task {task['task_id']} completed in ")
    assert "100/100%" in err  # tqdm's bar (text mode outside a notebook)
    assert ip.user_ns["kept"]["status"] == "completed"


def test_wait_on_a_failed_task_prints_its_error_code_and_message(ip, client, capsys):
    chunk = client.data.put("node1:dram", data=b"f" * 1_000_000)
    slow = client.data.transfer(chunk["chunk_id"], "node2", "dram", bandwidth_limit=100_000)
    after = client.data.transfer(chunk["chunk_id"], "node2", "disk", dependencies=[slow["task_id"]])
    client.tasks.cancel(slow["task_id"])
    ip.run_line_magic("gswarm", f"wait {after['task_id']} --timeout 60")
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"task {after['task_id']} failed")
    assert ": DEPENDENCY_FAILED: " in out and slow["task_id"] in out


def test_wait_past_its_timeout_is_a_usage_error(ip, client):
    chunk = client.data.put("node1:dram", data=b"s" * 1_000_000)
    task = client.data.transfer(chunk["chunk_id"], "node2", "dram", bandwidth_limit=100_000)
    try:
        with pytest.raises(UsageError, match="REQUEST_TIMEOUT"):
            ip.run_line_magic("gswarm", f"wait {task['task_id']} --timeout 0.2")
    finally:
        client.tasks.cancel(task["task_id"])


@pytest.mark.parametrize(
    "line, message",
    [
        ("wait", "usage: %gswarm wait"),
        ("wait some-task --timeout -1", "usage: %gswarm wait"),
        ("tasks --status sleeping", "usage: %gswarm tasks"),
        ("tasks --limit many", "usage: %gswarm tasks"),
        ("data --colour red", "usage: %gswarm"),
        ("wait transfer-nothing-999", "NOT_FOUND"),
    ],
)
def test_wrong_use_is_a_usage_error(ip, line, message):
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic("gswarm", line)
