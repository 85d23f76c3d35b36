"""The vGPU book over a real SQLite file: durable across a reopen, its ledger following what is
placed, its nodes showing the vGPU as a device and what it carved taken off dram; the pure parts
of create and delete (dram check, backing, conflicts) with a named fake for what sits on it."""

from __future__ import annotations

import asyncio

import pytest

from gswarm_jupyter.cluster.tenancy.vgpus import VgpuBook, VirtualGpus
from gswarm_jupyter.core.db import Database
from gswarm_jupyter.core.errors import Conflict, InsufficientMemory, NotFound
from gswarm_jupyter.core.nodes import NodeDirectory, WorkerSeen
from gswarm_jupyter.core.vgpu_api import VgpuCreate

MIB = 2**20
REPORT = {"devices": {"disk": {"total": 10**12, "used": 0, "available": 10**12},
                      "dram": {"total": 1024 * MIB, "used": 24 * MIB, "available": 1000 * MIB}},
          "gpus": [], "vgpus": []}


class FakePlacements:
    """Named fake of the location tables: holder -> bytes per (node, device)."""

    def __init__(self) -> None:
        self.held: dict[tuple[str, str], dict[str, int]] = {}

    def on(self, node: str, device: str) -> dict[str, int]:
        return dict(self.held.get((node, device), {}))


class FakeOccupants:
    """Named fake of storage and serving: what sits on a device, and clearing it."""

    def __init__(self, placed: FakePlacements) -> None:
        self.placed = placed
        self.last: list[str] = []

    def on_device(self, node: str, device: str) -> dict[str, list[str]]:
        held = self.placed.on(node, device)
        return {"services": [], "models": [h for h in held if h.startswith("model:")],
                "chunks": [h for h in held if h.startswith("chunk:")], "last_copies": self.last}

    async def clear(self, node: str, device: str) -> dict[str, list[str]]:
        held = self.on_device(node, device)
        self.placed.held.pop((node, device), None)
        return {k: held[k] for k in ("services", "models", "chunks")}


class FakeBindings:
    """Named fake of the workers: which vgpuN each node was told, as `bind_virtual` would map."""

    def __init__(self) -> None:
        self.bound: dict[tuple[str, str], str] = {}
        self.watching: list = []

    async def bind(self, vgpu) -> None:
        self.bound[(vgpu.node, vgpu.device)] = vgpu.physical_device

    async def unbind(self, vgpu) -> None:
        self.bound.pop((vgpu.node, vgpu.device), None)

    def watch(self, on_node) -> None:
        self.watching.append(on_node)


def setup(path) -> tuple[Database, FakePlacements, VgpuBook, VirtualGpus]:
    db = Database(path)
    placed = FakePlacements()
    book = VgpuBook(db, placed)
    db.migrate()
    book.load()
    nodes = NodeDirectory(virtual=book.of_node)
    nodes.observe([WorkerSeen("node1", "tcp://a:1", "127.0.0.1", 100.0, None, REPORT)], 100.0)
    return db, placed, book, VirtualGpus(book, nodes, FakeOccupants(placed), FakeBindings(),
                                         clock=lambda: 5.0)


def test_carved_shown_booked_and_durable(tmp_path):
    db, placed, book, vgpus = setup(tmp_path / "s.sqlite3")
    made = asyncio.run(vgpus.create(
        VgpuCreate(virtual_gpu_id="v", memory_size=100 * MIB, compute_units=3), "token:x"))
    assert vgpus.bindings.bound == {("node1", "vgpu0"): "dram"}
    assert (made["device"], made["backing"], made["physical_gpu_id"]) == ("vgpu0", "cpu",
                                                                          "node1:dram")
    node = vgpus.nodes.get("node1")
    assert node.devices["vgpu0"] == {"total": 100 * MIB, "used": 0, "available": 100 * MIB}
    assert node.devices["dram"]["available"] == 900 * MIB  # what it carved is nobody else's
    assert "vgpu0" in node.device_names

    placed.held[("node1", "vgpu0")] = {"chunk:c1": 30 * MIB}
    assert node.devices["vgpu0"]["available"] == 70 * MIB
    assert book.ledger.usage("node1:vgpu0").holders == {"chunk:c1": 30 * MIB}
    assert node.devices["dram"]["available"] == 930 * MIB  # its bytes are in the worker now
    with pytest.raises(InsufficientMemory) as refused:
        asyncio.run(vgpus.create(
            VgpuCreate(virtual_gpu_id="w", memory_size=931 * MIB, compute_units=1), "token:x"))
    assert refused.value.details["available"] == 930 * MIB
    placed.held[("node1", "vgpu0")] = {}
    assert book.used(book.get("v")) == 0  # freed when the chunk went
    db.close()

    db, placed, book, vgpus = setup(tmp_path / "s.sqlite3")  # a restart
    assert vgpus.get("v")["memory_size"] == 100 * MIB and vgpus.get("v")["owner"] == "token:x"
    assert book.next_device("node1") == "vgpu1"
    db.close()


def test_delete_refuses_while_used_and_never_loses_a_last_copy(tmp_path):
    db, placed, book, vgpus = setup(tmp_path / "s.sqlite3")
    def create(**fields):
        return asyncio.run(vgpus.create(VgpuCreate(**fields), "o"))

    create(virtual_gpu_id="v", memory_size=10 * MIB, compute_units=1)
    with pytest.raises(Conflict):
        create(virtual_gpu_id="v", memory_size=MIB, compute_units=1)
    with pytest.raises(NotFound):
        create(virtual_gpu_id="g", memory_size=MIB, compute_units=1, physical_device="gpu0")
    placed.held[("node1", "vgpu0")] = {"model:m": MIB}
    with pytest.raises(Conflict) as busy:
        asyncio.run(vgpus.delete("v"))
    assert busy.value.details["models"] == ["model:m"]
    vgpus.occupants.last = ["model m"]
    with pytest.raises(Conflict, match="last copy"):
        asyncio.run(vgpus.delete("v", force=True))
    vgpus.occupants.last = []
    gone = asyncio.run(vgpus.delete("v", force=True))
    assert gone["removed"]["models"] == ["model:m"] and not book.all()
    assert vgpus.bindings.bound == {}  # the worker was told to forget it
    assert "vgpu0" not in vgpus.nodes.get("node1").devices
    db.close()
