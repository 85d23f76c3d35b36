"""Virtual GPUs outlive a restart of a real server process: the same device on the same node,
its quota still enforced where bytes are placed."""

from __future__ import annotations

import pytest

from gswarm_jupyter.client import GswarmClient
from gswarm_jupyter.core.errors import InsufficientMemory
from gswarm_jupyter.testing import LiveServer

MIB = 2**20


def test_a_vgpu_survives_a_restart(tmp_path):
    with LiveServer(tmp_path, nodes=1) as server, GswarmClient(server.url, server.token) as owner:
        made = owner.compute.vgpu_create("kept", 2 * MIB, 3)

    with LiveServer(tmp_path, nodes=1) as server, GswarmClient(server.url, server.token) as owner:
        [again] = owner.compute.vgpus()
        assert {k: again[k] for k in ("virtual_gpu_id", "node", "device", "memory_size",
                                      "compute_units", "created_at")} == {
            k: made[k] for k in ("virtual_gpu_id", "node", "device", "memory_size",
                                 "compute_units", "created_at")}
        node = owner.node(made["node"])
        assert node["devices"][made["device"]]["total"] == 2 * MIB
        where = f"{made['node']}:{made['device']}"
        with pytest.raises(InsufficientMemory):
            owner.data.put(where, data=b"\0" * (2 * MIB + 1))
        owner.data.put(where, data=b"\0" * MIB)
        assert owner.compute.vgpu("kept")["memory_used"] == MIB
