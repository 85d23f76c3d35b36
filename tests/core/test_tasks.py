"""The task queue's ordering and state machine (pure), with hypothesis properties."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gswarm_jupyter.core.errors import Conflict, InvalidRequest, NotFound
from gswarm_jupyter.core.tasks import (
    MIN_CONCURRENT,
    PRIORITIES,
    RANK,
    TASKS_PER_THREAD,
    TaskQueue,
    limit_per_thread,
    task_id_for,
)


def make_queue(max_concurrent: int = 2) -> TaskQueue:
    ticks = itertools.count(1000)
    return TaskQueue(max_concurrent, clock=lambda: float(next(ticks)))


def test_task_ids_name_type_subject_and_number():
    q = make_queue()
    a = q.submit("transfer", "chunk-0123456789ab")
    b = q.submit("move", "chunk-0123456789ab")
    assert a.task_id == "transfer-chunk-0123456789ab-1"
    assert b.task_id == "move-chunk-0123456789ab-2"
    assert task_id_for("download", "gpt 2/x", 7) == "download-gpt_2_x-7"


def test_priority_then_fifo():
    q = make_queue(max_concurrent=1)
    low = q.submit("t", "low", priority="low")
    n1 = q.submit("t", "n1")
    crit = q.submit("t", "crit", priority="critical")
    n2 = q.submit("t", "n2")
    high = q.submit("t", "high", priority="high")
    order = []
    while True:
        started = q.dispatch()
        if not started:
            break
        assert len(started) == 1
        order.append(started[0].task_id)
        q.complete(started[0].task_id, {"ok": True})
    assert order == [t.task_id for t in (crit, high, n1, n2, low)]


def test_max_concurrent_limits_running():
    q = make_queue(max_concurrent=2)
    for i in range(5):
        q.submit("t", str(i))
    assert len(q.dispatch()) == 2
    assert q.dispatch() == []
    assert q.counts() == {"pending": 3, "running": 2, "completed": 0, "failed": 0, "cancelled": 0}


def test_record_fields_and_timestamps():
    q = make_queue()
    t = q.submit("move", "c", priority="high", resources={"devices": ["node1:dram"]})
    r = t.record()
    assert set(r) == {
        "task_id", "task_type", "priority", "status", "dependencies", "resources", "created_at",
        "started_at", "completed_at", "progress", "result", "error",
    }
    assert r["resources"] == {"devices": ["node1:dram"], "models": [], "chunks": []}
    assert r["status"] == "pending" and r["started_at"] is None and r["progress"] == 0
    q.dispatch()
    assert t.started_at is not None and t.started_at >= t.created_at
    assert q.set_progress(t.task_id, 41.7) is t and t.progress == 41
    assert q.set_progress(t.task_id, 250) is t and t.progress == 100
    assert q.set_progress(t.task_id, 100) is None  # no change, no event
    q.complete(t.task_id, {"size": 3})
    assert t.status == "completed" and t.result == {"size": 3} and t.completed_at >= t.started_at


def test_dependencies_wait_until_completed():
    q = make_queue(max_concurrent=4)
    a = q.submit("t", "a")
    b = q.submit("t", "b", dependencies=[a.task_id])
    assert [t.task_id for t in q.dispatch()] == [a.task_id]
    assert b.status == "pending"
    q.complete(a.task_id)
    assert [t.task_id for t in q.dispatch()] == [b.task_id]


def test_failed_dependency_fails_dependants_transitively():
    q = make_queue(max_concurrent=4)
    a = q.submit("t", "a")
    b = q.submit("t", "b", dependencies=[a.task_id])
    c = q.submit("t", "c", dependencies=[b.task_id])
    q.dispatch()
    q.fail(a.task_id, {"code": "NETWORK_ERROR", "message": "gone", "details": {}})
    assert b.status == c.status == "failed"
    assert b.error["code"] == "DEPENDENCY_FAILED" and b.error["details"]["dependency"] == a.task_id
    assert c.error["details"]["dependency"] == b.task_id


def test_cancelled_dependency_fails_dependant_and_late_submit_fails_at_once():
    q = make_queue()
    a = q.submit("t", "a")
    q.cancel(a.task_id)
    late = q.submit("t", "late", dependencies=[a.task_id])
    assert late.status == "failed" and late.error["code"] == "DEPENDENCY_FAILED"


def test_unknown_dependency_and_priority_are_invalid_requests():
    q = make_queue()
    with pytest.raises(InvalidRequest) as exc:
        q.submit("t", "x", dependencies=["nope-1"])
    assert exc.value.details["field"] == "dependencies"
    with pytest.raises(InvalidRequest) as exc:
        q.submit("t", "x", priority="urgent")
    assert exc.value.details["field"] == "priority"
    assert q.tasks() == []


def test_cancel_rules():
    q = make_queue(max_concurrent=1)
    running = q.submit("t", "r")
    pending = q.submit("t", "p")
    q.dispatch()
    assert q.cancel(pending.task_id).status == "cancelled"
    assert q.cancel(running.task_id).status == "cancelled"
    with pytest.raises(Conflict):
        q.cancel(running.task_id)
    done = q.submit("t", "d")
    q.dispatch()
    q.complete(done.task_id)
    with pytest.raises(Conflict):
        q.cancel(done.task_id)
    with pytest.raises(NotFound):
        q.cancel("missing-1")


def test_locks_keep_conflicting_tasks_apart_without_blocking_others():
    q = make_queue(max_concurrent=3)
    a = q.submit("t", "a", locks=["chunk-1"])
    b = q.submit("t", "b", locks=["chunk-1"], priority="critical")
    c = q.submit("t", "c", locks=["chunk-2"])
    started = {t.task_id for t in q.dispatch()}
    assert started == {b.task_id, c.task_id}
    assert a.status == "pending"
    q.complete(b.task_id)
    assert [t.task_id for t in q.dispatch()] == [a.task_id]


def test_restore_fails_running_as_interrupted_and_keeps_pending():
    q = make_queue(max_concurrent=1)
    r = q.submit("t", "r")
    p = q.submit("t", "p")
    q.dispatch()
    saved = [t for t in q.tasks()]
    fresh = make_queue(max_concurrent=1)
    fresh.restore(saved)
    assert fresh.get(r.task_id).status == "failed"
    assert fresh.get(r.task_id).error["details"]["reason"] == "interrupted"
    assert fresh.get(p.task_id).status == "pending"
    nxt = fresh.submit("t", "n")
    assert nxt.seq == 3  # numbering continues after a restart
    assert [t.task_id for t in fresh.dispatch()] == [p.task_id]


def test_prune_forgets_old_and_surplus_finished_tasks_never_live_ones():
    now = [0.0]
    q = TaskQueue(2, clock=lambda: now[0])
    old = q.submit("t", "old")
    running = q.submit("t", "running")
    q.dispatch()  # old and running start at 0
    q.complete(old.task_id)  # finished at 0
    pending = q.submit("t", "pending", dependencies=[old.task_id])
    recent = []
    for i in range(4):
        now[0] = 100.0 + i
        task = q.submit("t", f"recent{i}")
        q.cancel(task.task_id)
        recent.append(task.task_id)
    now[0] = 200.0

    assert q.prune(before=50.0, keep=10) == [old.task_id]  # by age
    assert q.prune(before=50.0, keep=2) == recent[:2]  # by count: the earliest finished go
    assert [t.task_id for t in q.tasks()] == [
        running.task_id, pending.task_id, *recent[2:]]
    assert q.prune(before=1e9, keep=0) == recent[2:]
    assert {t.status for t in q.tasks()} == {"running", "pending"}
    assert q.counts()["cancelled"] == 0
    with pytest.raises(NotFound):
        q.get(old.task_id)
    # A dependency that completed and was forgotten no longer holds its dependant back.
    q.complete(running.task_id)
    assert {t.task_id for t in q.dispatch()} == {pending.task_id}


def test_finishing_lets_go_of_the_payload_and_restore_keeps_finish_order():
    q = make_queue()
    a = q.submit("t", "a", payload={"rows": [1, 2, 3]})
    b = q.submit("t", "b", payload={"rows": [4]})
    q.dispatch()
    held = a.payload
    q.complete(b.task_id)
    q.fail(a.task_id, {"code": "TASK_FAILED", "message": "x", "details": {}})
    assert a.payload == {} and b.payload == {} and held == {"rows": [1, 2, 3]}
    fresh = make_queue()
    fresh.restore(q.tasks())
    assert fresh.prune(before=0.0, keep=1) == [b.task_id]  # b finished first


def test_listeners_see_every_change():
    q = make_queue()
    seen = []
    q.listeners.add(lambda t: seen.append((t.task_id, t.status, t.progress)))
    t = q.submit("t", "x")
    q.dispatch()
    q.set_progress(t.task_id, 50)
    q.complete(t.task_id)
    assert [s[1:] for s in seen] == [("pending", 0), ("running", 0), ("running", 50),
                                      ("completed", 100)]


def test_the_default_limit_follows_the_worker_threads_and_never_drops_below_four():
    threads = [0]
    q = TaskQueue(limit_per_thread(lambda: threads[0]))
    for i in range(40):
        q.submit("t", str(i))
    assert q.max_concurrent == MIN_CONCURRENT and len(q.dispatch()) == MIN_CONCURRENT
    threads[0] = 2  # two worker threads came online
    assert q.max_concurrent == 2 * TASKS_PER_THREAD
    assert len(q.dispatch()) == 2 * TASKS_PER_THREAD - MIN_CONCURRENT
    threads[0] = 1  # one left: running tasks stay, no new one starts past the new limit
    assert q.dispatch() == [] and len(q.running()) == 2 * TASKS_PER_THREAD
    with pytest.raises(ValueError):
        TaskQueue(0)


def test_position_counts_pending_ahead():
    q = make_queue(max_concurrent=1)
    q.submit("t", "a")
    q.dispatch()
    b = q.submit("t", "b")
    c = q.submit("t", "c", priority="high")
    assert q.position(c.task_id) == 0 and q.position(b.task_id) == 1


# -- properties ----------------------------------------------------------------------------------

ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("submit"),
            st.sampled_from(PRIORITIES),
            st.lists(st.integers(0, 30), max_size=2),
            st.lists(st.sampled_from(["k1", "k2"]), max_size=1),
        ),
        st.tuples(st.just("dispatch")),
        st.tuples(st.just("complete"), st.integers(0, 30)),
        st.tuples(st.just("fail"), st.integers(0, 30)),
        st.tuples(st.just("cancel"), st.integers(0, 30)),
        st.tuples(st.just("progress"), st.integers(0, 30), st.integers(-50, 150)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(max_concurrent=st.integers(1, 4), program=ops)
def test_invariants_hold_under_any_sequence(max_concurrent, program):
    q = make_queue(max_concurrent)
    ids: list[str] = []
    for op in program:
        kind = op[0]
        if kind == "submit":
            deps = [ids[i] for i in op[2] if i < len(ids)]
            ids.append(q.submit("t", "s", priority=op[1], dependencies=deps, locks=op[3]).task_id)
        elif kind == "dispatch":
            before = {t.task_id for t in q.tasks("pending")}
            started = q.dispatch()
            # started in dispatch order, and no ready task left behind beats a started one
            orders = [t.order for t in started]
            assert orders == sorted(orders)
            held = {k for t in q.running() for k in t.locks}
            for t in q.tasks("pending"):
                ready = all(q.get(d).status == "completed" for d in t.dependencies)
                if ready and not held.intersection(t.locks):
                    assert len(q.running()) == max_concurrent
                    assert not started or t.order > max(orders)
            assert {t.task_id for t in started} <= before
            for t in started:
                assert all(q.get(d).status == "completed" for d in t.dependencies)
        elif ids and op[1] < len(ids):
            task = q.get(ids[op[1]])
            try:
                if kind == "complete":
                    q.complete(task.task_id)
                elif kind == "fail":
                    q.fail(task.task_id, {"code": "TASK_FAILED", "message": "x", "details": {}})
                elif kind == "cancel":
                    q.cancel(task.task_id)
                else:
                    q.set_progress(task.task_id, op[2])
            except Conflict:
                assert task.finished or (kind == "complete" and task.status == "pending")
        running = q.running()
        assert len(running) <= max_concurrent
        held: list[str] = [k for t in running for k in t.locks]
        assert len(held) == len(set(held))
        pending = q.tasks("pending")
        for t in q.tasks():
            # the index's answer is the definition's: pending tasks ahead in dispatch order
            ahead = sum(1 for p in pending if p.order < t.order) if t.status == "pending" else None
            assert q.position(t.task_id) == ahead
            assert 0 <= t.progress <= 100
            assert (t.completed_at is not None) == t.finished
            assert not (t.finished and t.status == "running")
            if t.status == "running":
                assert t.started_at is not None
                assert all(q.get(d).status == "completed" for d in t.dependencies)
            for d in t.dependencies:
                if q.get(d).status in ("failed", "cancelled"):
                    assert t.status in ("failed", "cancelled", "completed")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(PRIORITIES), min_size=1, max_size=30))
def test_one_slot_runs_in_priority_then_fifo_order(priorities):
    q = make_queue(1)
    tasks = [q.submit("t", str(i), priority=p) for i, p in enumerate(priorities)]
    order = []
    while started := q.dispatch():
        order.append(started[0])
        q.complete(started[0].task_id)
    assert order == sorted(tasks, key=lambda t: (RANK[t.priority], t.seq))
