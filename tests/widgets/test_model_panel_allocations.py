"""`ModelPanel` draws a resource allocation as a reserved band in its device's cell."""

from __future__ import annotations

import pytest

from gswarm_jupyter.client import GswarmClient
from gswarm_jupyter.widgets import ModelPanel

MIB = 2**20


@pytest.fixture
def client(live_env):
    with GswarmClient() as client:
        yield client


def test_an_allocation_is_a_reserved_band_on_its_device(client):
    made = client.compute.reserve(3 * MIB, 120, device="node2:dram", user_id="panel-user")
    try:
        panel = ModelPanel(client, interval=60)
        try:
            [shown] = panel.reserved[("dram", "node2")]
            assert shown["allocation_id"] == made["allocation_id"]
            assert ("dram", "node1") not in panel.reserved
            assert "reserved 3.0 MiB · panel-user" in panel.grid.value
            assert made["allocation_id"] in panel.grid.value  # in the band's title
        finally:
            panel.close()
    finally:
        client.compute.free(made["allocation_id"])
    panel = ModelPanel(client, interval=60)
    try:
        assert panel.reserved == {} and "reserved 3.0 MiB" not in panel.grid.value
    finally:
        panel.close()
