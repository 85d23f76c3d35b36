"""The shared byte ledger: refuses past capacity without changing anything, never goes negative,
and holds under concurrent reservations."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from gswarm_jupyter.cluster.tenancy.ledger import ByteLedger
from gswarm_jupyter.core.errors import InsufficientMemory, NotFound


def test_reserve_release_and_refusal_details():
    ledger = ByteLedger()
    ledger.set_capacity("node1:vgpu0", 100)
    assert ledger.reserve("node1:vgpu0", "a", 60) == 60
    with pytest.raises(InsufficientMemory) as refused:
        ledger.reserve("node1:vgpu0", "b", 41)
    assert refused.value.details == {"required": 41, "available": 40, "device": "node1:vgpu0"}
    assert ledger.usage("node1:vgpu0").used == 60  # the refusal changed nothing
    assert ledger.release("node1:vgpu0", "a", 1000) == 60  # never below zero
    assert ledger.release("node1:vgpu0", "a") == 0
    assert ledger.usage("node1:vgpu0").available == 100
    with pytest.raises(NotFound):
        ledger.reserve("node1:vgpu9", "a", 1)
    ledger.reserve("node1:vgpu0", "a", 50)
    with pytest.raises(InsufficientMemory):
        ledger.set_capacity("node1:vgpu0", 49)
    assert ledger.remove_device("node1:vgpu0") == {"a": 50}


def test_concurrent_reservations_never_overcommit():
    ledger = ByteLedger()
    ledger.set_capacity("dram", 1000)

    def take(i: int) -> bool:
        try:
            ledger.reserve("dram", f"h{i % 7}", 7)
            return True
        except InsufficientMemory:
            return False

    with ThreadPoolExecutor(8) as pool:
        granted = sum(pool.map(take, range(400)))
    assert granted == 1000 // 7
    assert ledger.usage("dram").used == granted * 7 <= 1000
