"""`ModelPanel` shows a virtual GPU as a row of the tier map with its quota used and free."""

from __future__ import annotations

import pytest

from gswarm_jupyter.client import GswarmClient
from gswarm_jupyter.widgets import ModelPanel

MIB = 2**20


@pytest.fixture
def client(live_env):
    with GswarmClient() as client:
        yield client


def test_a_vgpu_cell_shows_its_quota_used_and_free(client):
    made = client.compute.vgpu_create("panel-v", 4 * MIB, 2, node="node2")
    chunk = None
    try:
        chunk = client.data.put(f"node2:{made['device']}", data=b"\1" * MIB)
        panel = ModelPanel(client, interval=60)
        try:
            assert made["device"] in panel.devices
            shown = panel.quotas[(made["device"], "node2")]
            assert (shown["memory_used"], shown["memory_available"]) == (MIB, 3 * MIB)
            assert "panel-v · used 1.0 MiB · free 3.0 MiB of 4.0 MiB" in panel.grid.value
        finally:
            panel.close()
    finally:
        if chunk is not None:
            client.data.delete(chunk["chunk_id"])
        client.compute.vgpu_delete("panel-v")
