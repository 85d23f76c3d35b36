"""Weighted fair queueing of batches among vGPUs: the pure policy and the threaded gate."""

import threading
import time

from gswarm_jupyter.cluster.tenancy.wfq import DeviceGate, FairQueue


def test_backlogged_flows_share_turns_by_weight():
    queue = FairQueue()
    weights = {"a": 1, "b": 3}
    for flow, weight in weights.items():
        queue.push(flow, weight)
    served = {"a": 0, "b": 0}
    for _ in range(400):
        flow = queue.pop().flow
        served[flow] += 1
        queue.push(flow, weights[flow])  # saturated: always another batch waiting
    assert served == {"a": 100, "b": 300}


def test_an_idle_flow_banks_no_credit():
    queue = FairQueue()
    for _ in range(50):  # b runs alone for a while
        queue.push("b", 1)
        queue.pop()
    queue.push("a", 1)
    queue.push("b", 1)
    firsts = [queue.pop().flow for _ in range(2)]
    assert sorted(firsts) == ["a", "b"]  # a does not get 50 turns in a row


def test_threads_through_the_gate_get_their_share():
    """Each thread forms its next batch only after its last one ran (as a service's batcher
    does): without anticipation the two would alternate, 50/50."""
    gate = DeviceGate(grace=0.05)
    stop = time.monotonic() + 1.5

    def saturate(flow: str, weight: int) -> None:
        while time.monotonic() < stop:
            with gate.turn(flow, weight):
                time.sleep(0.004)  # a batch
            time.sleep(0.001)  # forming the next batch

    threads = [threading.Thread(target=saturate, args=a) for a in (("a", 1), ("b", 3))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = gate.granted["a"] + gate.granted["b"]
    assert total > 40
    assert abs(gate.granted["b"] / total - 0.75) < 0.1, gate.granted


def test_a_flow_that_does_not_come_back_holds_the_device_only_for_the_grace():
    gate = DeviceGate(grace=0.05)
    with gate.turn("a", 1):
        pass  # a alone: the device now waits up to 50 ms for a's next batch
    started = time.monotonic()
    with gate.turn("b", 1):
        waited = time.monotonic() - started
    assert waited < 1.0  # then b runs (the grace, not forever)
