"""`ClusterPanel`: a card per node with sparklines, storage bars, running tasks and services;
errors are shown, not raised."""

from __future__ import annotations

import re
import time

import bqplot as bq
import httpx

from gswarm_jupyter.client import GswarmClient
from gswarm_jupyter.testing import free_port
from gswarm_jupyter.widgets import ClusterPanel
from gswarm_jupyter.widgets.cluster import dashboard_link, gpu_reading, task_nodes


def test_a_card_per_node_with_sparklines_and_storage_bars(live_env):
    panel = ClusterPanel(interval=60)
    try:
        assert panel.node_names == ["node1", "node2"]
        assert set(panel.bars) == {(n, d) for n in ("node1", "node2") for d in ("disk", "dram")}
        dram = panel.bars[("node1", "dram")]
        assert 0.0 < dram.value < 1.0 and dram.description == "dram"
        assert "2 of 2 nodes online" in panel.header.value
        card = panel.cards["node1"]
        assert isinstance(card.cpu.figure, bq.Figure)
        assert len(card.memory.line.y) == 1 and "GiB" in card.memory.reading.value
        assert card.gpus == {}  # no GPU here

        def cpu_points_after_refreshes(at_least: int) -> int:
            deadline = time.monotonic() + 45  # a generous bound: a loaded machine samples late
            while len(card.cpu.line.y) < at_least and time.monotonic() < deadline:
                time.sleep(0.3)
                panel.refresh()
            return len(card.cpu.line.y)

        # a node's very first frame may have no CPU ratio yet (null: no interval measured)
        first = cpu_points_after_refreshes(1)
        assert first >= 1 and card.cpu.reading.value.endswith("%")
        assert cpu_points_after_refreshes(first + 1) == first + 1  # a new frame: one more point
        assert panel.error.value == "" and panel.problem.value == ""
    finally:
        panel.close()


def test_running_tasks_and_services_are_shown_on_their_nodes(live_env):
    with GswarmClient() as client:
        chunk = client.data.put("node1:dram", data=b"c" * 2_000_000)
        task = client.data.transfer(chunk["chunk_id"], "node2", "dram", bandwidth_limit=100_000)
        panel = ClusterPanel(client, interval=60)
        try:
            assert task["task_id"] in panel.cards["node1"].work.value
            assert task["task_id"] in panel.cards["node2"].work.value
            assert "1 tasks running" in panel.header.value
            client.tasks.cancel(task["task_id"])
            panel.refresh()
            assert task["task_id"] not in panel.cards["node1"].work.value
        finally:
            panel.close()
            client.data.delete(chunk["chunk_id"], force=True)


def test_a_task_is_on_the_nodes_of_its_devices_and_a_gpu_reads_in_units():
    assert task_nodes({"resources": {"devices": ["node1:dram", "node2:disk"]}}) == {"node1", "node2"}
    assert task_nodes({"resources": None}) == set()
    assert gpu_reading({"utilization_ratio": 0.25, "memory_used_bytes": 1 << 30,
                        "memory_total_bytes": 4 << 30}) == (25.0, "25% · 1.0/4.0 GiB")
    assert gpu_reading({}) == (None, "n/a")


def test_an_unreachable_server_is_shown_not_raised():
    panel = ClusterPanel(GswarmClient(f"http://127.0.0.1:{free_port()}/", "t"), interval=60)
    assert "NETWORK_ERROR" in panel.problem.value
    assert panel.bars == {}
    panel.close()


def test_the_dask_dashboard_link_opens_through_the_server(live_env):
    with GswarmClient() as client:
        panel = ClusterPanel(client, interval=60)
        try:
            links = re.findall(r'<a href="([^"]+)"[^>]*>Dask dashboard</a>', panel.header.value)
            assert links == [client.base_url + "gswarm/dask/status"]
            page = httpx.get(links[0], headers={"Authorization": f"token {client.token}"})
            assert page.status_code == 200 and "bokeh" in page.text.lower()
            assert httpx.get(links[0]).status_code == 401
        finally:
            panel.close()


def test_no_dashboard_link_without_a_dashboard():
    assert dashboard_link("http://127.0.0.1:1/", {"scheduler": {"dashboard_path": None}}) == ""
    assert dashboard_link("http://127.0.0.1:1/base/", {"scheduler": {}}) == ""
    assert dashboard_link("http://127.0.0.1:1/base", {"scheduler": {
        "dashboard_path": "gswarm/dask/status"}}) == (
        ' · <a href="http://127.0.0.1:1/base/gswarm/dask/status" target="_blank" '
        'rel="noopener">Dask dashboard</a>')
