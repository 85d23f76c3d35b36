"""`ClusterPanel`: its state follows the cluster, and errors are shown, not raised."""

from __future__ import annotations

from gswarm_jupyter.client import GswarmClient
from gswarm_jupyter.testing import free_port
from gswarm_jupyter.widgets import ClusterPanel


def test_the_panel_draws_a_memory_bar_per_node_and_device(live_env):
    panel = ClusterPanel(interval=60)
    try:
        assert panel.node_names == ["node1", "node2"]
        assert set(panel.bars) == {(n, d) for n in ("node1", "node2") for d in ("disk", "dram")}
        dram = panel.bars[("node1", "dram")]
        assert 0.0 < dram.value < 1.0 and dram.description == "dram"
        assert "2 of 2 nodes online" in panel.header.value
        assert panel.error.value == ""
    finally:
        panel.close()


def test_an_unreachable_server_is_shown_not_raised():
    panel = ClusterPanel(GswarmClient(f"http://127.0.0.1:{free_port()}/", "t"), interval=60)
    assert "NETWORK_ERROR" in panel.error.value
    assert panel.bars == {}
    panel.close()
