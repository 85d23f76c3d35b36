"""Tasks durable in SQLite: saved on every change, restored after a restart, history queries."""

from __future__ import annotations

import itertools

import pytest

from gswarm_jupyter.core.db import Database
from gswarm_jupyter.core.errors import InvalidRequest
from gswarm_jupyter.core.tasks import TaskQueue
from gswarm_jupyter.core.taskstore import TaskStore, parse_since


def open_queue(path, max_concurrent=1, start=100):
    db = Database(path)
    db.migrate()
    store = TaskStore(db)
    ticks = itertools.count(start)
    q = TaskQueue(max_concurrent, clock=lambda: float(next(ticks)))
    q.listeners.append(store.save)
    return db, store, q


def test_restart_fails_running_keeps_pending_and_history(tmp_path):
    path = tmp_path / "state.sqlite3"
    db, store, q = open_queue(path)
    done = q.submit("move", "c1", resources={"chunks": ["c1"]}, params={"chunk_id": "c1"})
    q.dispatch()
    q.set_progress(done.task_id, 30)
    q.complete(done.task_id, {"size": 5})
    running = q.submit("transfer", "c1", priority="high")
    pending = q.submit("transfer", "c2", dependencies=[done.task_id])
    q.dispatch()
    assert running.status == "running" and pending.status == "pending"
    db.close()

    db2, store2, q2 = open_queue(path, start=1000)  # a later clock
    q2.restore(store2.load())
    assert q2.get(done.task_id).record() == done.record()
    assert q2.get(done.task_id).params == {"chunk_id": "c1"}
    again = q2.get(running.task_id)
    assert again.status == "failed" and again.error["details"]["reason"] == "interrupted"
    assert store2.history(status="failed")[0].task_id == running.task_id  # persisted too
    assert q2.get(pending.task_id).status == "pending"
    assert [t.task_id for t in q2.dispatch()] == [pending.task_id]

    history = store2.history()
    assert [t.task_id for t in history] == [running.task_id, done.task_id]  # latest first
    assert [t.task_id for t in store2.history(limit=1)] == [running.task_id]
    assert [t.task_id for t in store2.history(status="completed")] == [done.task_id]
    assert store2.history(since=done.completed_at + 0.5) == [store2.history()[0]]
    db2.close()


def test_parse_since_takes_epoch_and_iso():
    assert parse_since("1700000000.5") == 1700000000.5
    assert parse_since("2026-01-01T00:00:00Z") == 1767225600.0
    assert parse_since("2026-01-01T01:00:00+01:00") == 1767225600.0
    assert parse_since("2026-01-01T00:00:00") == 1767225600.0
    for bad in ("yesterday", "nan", "inf"):
        with pytest.raises(InvalidRequest) as exc:
            parse_since(bad)
        assert exc.value.details["field"] == "since"
