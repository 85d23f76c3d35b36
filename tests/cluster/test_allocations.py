"""Allocations over a real SQLite database, a real node directory and the real key ledger: device
choice, room withheld from others and capped for the owner, expiry, durability, and no
over-commit under concurrent reservations."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from gswarm_jupyter.cluster.tenancy.allocations import Allocations
from gswarm_jupyter.core.chunks import ChunkRegistry
from gswarm_jupyter.core.db import Database
from gswarm_jupyter.core.errors import Conflict, Forbidden, InsufficientMemory, InvalidRequest, NotFound
from gswarm_jupyter.core.key_usage import KeyUsage
from gswarm_jupyter.core.modelregistry import ModelRegistry
from gswarm_jupyter.core.nodes import NodeDirectory, WorkerSeen
from gswarm_jupyter.core.tasks import TaskQueue

MB = 2**20


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _nodes(gpus: bool = False, dram_free: int = 60 * MB) -> NodeDirectory:
    devices = {"disk": {"total": 100 * MB, "used": 0, "available": 100 * MB},
               "dram": {"total": 64 * MB, "used": 64 * MB - dram_free, "available": dram_free}}
    if gpus:
        devices["gpu0"] = {"total": 16 * MB, "used": 8 * MB, "available": 8 * MB}
        devices["gpu1"] = {"total": 16 * MB, "used": 2 * MB, "available": 14 * MB}
    nodes = NodeDirectory()
    nodes.observe([WorkerSeen("node1", "tcp://127.0.0.1:1", "127.0.0.1", 1000.0,
                              report={"devices": devices})], 1000.0)
    return nodes


@pytest.fixture
def world(tmp_path):
    db = Database(tmp_path / "state.sqlite3")
    models = ModelRegistry(db)
    usage = KeyUsage(db, TaskQueue(), ChunkRegistry(db), models)
    db.migrate()
    clock = Clock()
    yield db, models, usage, clock
    db.close()


def test_device_choice_least_loaded_gpu_else_dram(world):
    db, _, usage, clock = world
    allocs = Allocations(db, _nodes(gpus=True), usage, clock=clock)
    first = allocs.reserve("alice", "alice", 4 * MB, 1, 60, None)
    assert first.where == "node1:gpu1"  # gpu1 is the less loaded
    assert allocs.reserve("bob", "bob", 11 * MB, 1, 60, None).where == "node1:dram"  # no GPU fits
    plain = Allocations(db, _nodes(), usage, clock=clock)
    assert plain.reserve("carol", "carol", MB, 0, 60, None).where == "node1:dram"
    with pytest.raises(NotFound):
        plain.reserve("carol", "carol", MB, 0, 60, "node1:gpu7")
    with pytest.raises(InvalidRequest):
        plain.reserve("carol", "carol", MB, 0, 60, "node1:disk")


def test_room_withheld_from_others_and_capped_for_the_owner(world):
    db, models, usage, clock = world
    allocs = Allocations(db, _nodes(), usage, clock=clock)
    alloc = allocs.reserve("key:key_aaaaaaaaaaaa", "alice", 40 * MB, 1, 60, "node1:dram")
    assert alloc.record()["gpu_id"] == "node1:dram"
    # Another identity's model sees the 60 MB free less the 40 MB reserved.
    models.create("theirs", source_url="builtin://mlp", model_type="mlp", metadata={})
    assert allocs.room("theirs", "node1", "dram", 60 * MB) == 20 * MB
    # The owner's model (the key made it) may take its allocation, and no more.
    models.create("mine", source_url="builtin://mlp", model_type="mlp", metadata={})
    usage.record("key_aaaaaaaaaaaa", "model", "mine")
    assert allocs.room("mine", "node1", "dram", 60 * MB) == 40 * MB
    models.copies.put("mine", "node1", "dram", "ready", size=30 * MB)
    allocs.nodes = _nodes(dram_free=30 * MB)  # the node reports the copy's bytes taken
    # 30 MB of the allocation are used: others still lose the unused 10 MB, the owner has 10 left.
    assert allocs.used(alloc) == 30 * MB
    assert allocs.room("theirs", "node1", "dram", 30 * MB) == 20 * MB
    assert allocs.room("mine", "node1", "dram", 30 * MB) == 10 * MB
    assert allocs.unused_bytes("key:key_aaaaaaaaaaaa") == 10 * MB
    # A new allocation can take only what no allocation holds.
    with pytest.raises(InsufficientMemory) as refused:
        allocs.reserve("bob", "bob", 21 * MB, 0, 60, "node1:dram")
    assert refused.value.details["available"] == 20 * MB
    # Other devices are not touched.
    assert allocs.room("theirs", "node1", "disk", 5) == 5


def test_free_expiry_events_and_durability(world):
    db, _, usage, clock = world
    nodes = _nodes()
    allocs = Allocations(db, nodes, usage, clock=clock)
    events = []
    allocs.listeners.add(events.append)
    short = allocs.reserve("alice", "alice", MB, 1, 5, "dram")
    long = allocs.reserve("bob", "bob", 2 * MB, 1, 500, "dram")
    with pytest.raises(Forbidden):
        allocs.free(long.allocation_id, owner="alice")
    # A restart: a new Allocations over the same database holds the same two.
    again = Allocations(db, nodes, usage, clock=clock)
    again.load()
    assert {a.allocation_id for a in again.all()} == {short.allocation_id, long.allocation_id}
    assert again.ledger.usage("node1:dram").used == 3 * MB
    clock.now += 10
    assert [a.allocation_id for a in allocs.sweep()] == [short.allocation_id]
    assert [e["change"] for e in events] == ["created", "created", "expired"]
    assert allocs.ledger.usage("node1:dram").used == 2 * MB
    allocs.free(long.allocation_id, owner="bob")
    assert events[-1]["change"] == "freed" and allocs.all() == []
    assert db.all("SELECT * FROM allocations") == []
    with pytest.raises(NotFound):
        allocs.free(long.allocation_id)
    # Expired while the server was down: gone at load.
    later = Allocations(db, nodes, usage, clock=clock)
    later.reserve("carol", "carol", MB, 0, 1, "dram")
    clock.now += 5
    restarted = Allocations(db, nodes, usage, clock=clock)
    restarted.load()
    assert restarted.all() == [] and db.all("SELECT * FROM allocations") == []


def test_concurrent_reservations_never_overcommit(world):
    db, _, usage, clock = world
    allocs = Allocations(db, _nodes(), usage, clock=clock)
    size = 7 * MB  # at most 8 fit in the 60 MB available (64 MB total)

    def take(i: int) -> int:
        try:
            return allocs.reserve(f"user{i}", f"user{i}", size, 1, 60, "node1:dram").memory_size
        except InsufficientMemory:
            return 0

    with ThreadPoolExecutor(8) as pool:
        taken = list(pool.map(take, range(40)))
    assert sum(taken) == 8 * size
    assert allocs.ledger.usage("node1:dram").used == 8 * size
    assert len(db.all("SELECT * FROM allocations")) == 8


def test_compute_units_never_sum_past_the_device(world):
    db, _, usage, clock = world
    allocs = Allocations(db, _nodes(), usage, clock=clock)
    allocs.reserve("alice", "alice", MB, 60, 60, "node1:dram")
    with pytest.raises(Conflict) as refused:
        allocs.reserve("bob", "bob", MB, 41, 60, "node1:dram")
    assert refused.value.details == {"device": "node1:dram", "capacity": 100.0, "reserved": 60.0,
                                     "required": 41}
    assert len(allocs.all()) == 1  # nothing booked by the refusal
    allocs.reserve("bob", "bob", MB, 40, 60, "node1:dram")
