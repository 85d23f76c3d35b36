import time

from gswarm_jupyter.profiler.loop import FrameBuffer, SamplingLoop, Schedule
from gswarm_jupyter.profiler.node import plan_for
from gswarm_jupyter.profiler.samplers import NodeSampler


def test_schedule_runs_each_session_at_its_own_period():
    schedule = Schedule(idle_interval_ms=1000)
    schedule.set_plan({}, now=0.0)
    assert schedule.take_due(0.0) == []  # idle tick
    schedule.set_plan({"fast": 50, "slow": 100}, now=0.0)
    ticks = []
    t = 0.0
    while t < 0.3:
        due = schedule.take_due(t)
        if due is not None:
            ticks.append((round(t, 3), due))
        t = round(t + 0.01, 3)
    fast = [t for t, due in ticks if "fast" in due]
    slow = [t for t, due in ticks if "slow" in due]
    assert fast == [0.0, 0.05, 0.1, 0.15, 0.2, 0.25]
    assert slow == [0.0, 0.1, 0.2]
    assert all(due for _, due in ticks)  # no idle ticks while sessions run


def test_schedule_skips_missed_ticks_instead_of_bunching():
    schedule = Schedule()
    schedule.set_plan({"s": 10}, now=0.0)
    assert schedule.take_due(0.0) == ["s"]
    assert schedule.take_due(1.0) == ["s"]  # a long stall: one sample, not a hundred
    assert schedule.take_due(1.001) is None
    assert schedule.next_due() > 1.0


def test_buffer_numbers_keeps_until_acknowledged_and_counts_overflow():
    buffer = FrameBuffer(capacity=3)
    for i in range(5):
        buffer.push({"i": i})
    assert [f["seq"] for f in buffer.pending()] == [3, 4, 5]
    assert buffer.dropped == 2
    buffer.ack(4)
    assert [f["seq"] for f in buffer.pending()] == [5]
    assert buffer.pending(after=5) == []
    assert {f["instance"] for f in buffer.pending()} == {buffer.instance}


def test_plan_for_a_node():
    specs = [("all", 100, None), ("some", 50, ["n2"])]
    assert plan_for("n1", specs) == {"all": 100}
    assert plan_for("n2", specs) == {"all": 100, "some": 50}


def test_loop_samples_two_sessions_and_sync_drains_in_order():
    loop = SamplingLoop(NodeSampler("n1"))
    loop.start()
    try:
        loop.set_plan({"a": 20, "b": 60})
        time.sleep(0.4)
        first = loop.sync(0, {"a": 20, "b": 60})
        time.sleep(0.1)
        second = loop.sync(first[-1]["seq"], {})
    finally:
        loop.stop()
    seqs = [f["seq"] for f in first + second]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap, no repeat
    a = [f for f in first if "a" in f["sessions"]]
    b = [f for f in first if "b" in f["sessions"]]
    assert len(a) > len(b) >= 2
    stamps = [f["timestamp_unix_s"] for f in a]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
