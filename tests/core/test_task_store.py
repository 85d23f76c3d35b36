"""Tasks durable in SQLite: saved on every change without rewriting their payloads, restored after
a restart, history queries, retention of finished tasks."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest

from gswarm_jupyter.core.db import Database, dumps
from gswarm_jupyter.core.errors import InternalError, InvalidRequest
from gswarm_jupyter.core.retention import DAY, Retention, apply_retention
from gswarm_jupyter.core.tasks import TaskQueue
from gswarm_jupyter.core.taskstore import PRUNE_BATCH, TaskStore, parse_since


def open_queue(path, max_concurrent=1, start=100):
    db = Database(path)
    db.migrate()
    store = TaskStore(db)
    ticks = itertools.count(start)
    q = TaskQueue(max_concurrent, clock=lambda: float(next(ticks)))
    q.listeners.add(store.save)
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


def start_counting(db: Database) -> None:
    """From now on every page SQLite writes stays in the WAL file (no checkpoint moves it out)."""
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert wal_bytes(db) == 0


def wal_bytes(db: Database) -> int:
    """Bytes written to the database since `start_counting`."""
    return db.path.with_name(db.path.name + "-wal").stat().st_size


def count(db: Database, table: str) -> int:
    return db.one(f"SELECT count(*) FROM {table}")[0]


def test_a_big_payload_is_written_once_and_progress_does_not_rewrite_it(tmp_path):
    db, store, q = open_queue(tmp_path / "state.sqlite3")
    rows = [[i / 7.0] * 16 for i in range(8000)]
    size = len(dumps({"training_data": rows}))
    assert size > 1_000_000
    start_counting(db)
    task = q.submit("training", "m", params={"model_id": "m"}, payload={"training_data": rows})
    q.dispatch()
    assert wal_bytes(db) < 1.2 * size  # written once
    before = wal_bytes(db)
    for percent in range(1, 100):
        q.set_progress(task.task_id, percent)
    assert wal_bytes(db) - before < size / 2  # 99 updates of a small row, a page each
    assert count(db, "task_payloads") == 1
    q.complete(task.task_id, {"final_loss": 0.5})
    # Dropping the payload costs at most its size again (this SQLite zeroes freed pages).
    assert wal_bytes(db) < 2.5 * size
    assert count(db, "task_payloads") == 0  # a finished task's payload is gone
    assert task.payload == {}
    assert store.load()[0].record() == task.record()
    db.close()


def test_a_pending_task_gets_its_payload_back_after_a_restart(tmp_path):
    path = tmp_path / "state.sqlite3"
    db, store, q = open_queue(path)
    first = q.submit("inference", "m", payload={"request": {"input_data": [[1.0, 2.0]]}})
    waiting = q.submit("inference", "m", params={"request_id": "req_1"},
                       payload={"request": {"input_data": [[3.0]]}})
    q.dispatch()
    db.close()

    db2, store2, q2 = open_queue(path, start=1000)
    q2.restore(store2.load())
    assert q2.get(first.task_id).status == "failed" and q2.get(first.task_id).payload == {}
    again = q2.get(waiting.task_id)
    assert again.status == "pending" and again.params == {"request_id": "req_1"}
    assert again.payload == {"request": {"input_data": [[3.0]]}}
    assert [r["task_id"] for r in db2.all("SELECT task_id FROM task_payloads")] == [
        waiting.task_id]
    db2.close()


def test_a_payload_handed_in_encoded_is_written_as_given_and_read_back_after_a_restart(tmp_path):
    path = tmp_path / "state.sqlite3"
    db, _, q = open_queue(path)
    payload = {"training_data": [[0.5, -1.25]], "labels": [1]}
    encoded = json.dumps(payload, indent=1)  # not what dumps would make: seen as handed in
    task = q.submit("train", "m", payload=payload, encoded_payload=encoded)
    assert db.one("SELECT body FROM task_payloads")["body"] == encoded
    db.close()

    db2, store2, q2 = open_queue(path, start=1000)
    q2.restore(store2.load())
    again = q2.get(task.task_id)
    assert again.status == "pending" and again.payload == payload
    db2.close()


def finished_at(q: TaskQueue, now: list[float], at: float, subject: str) -> str:
    now[0] = at
    task = q.submit("t", subject, payload={"rows": [at]})
    q.dispatch()
    q.complete(task.task_id, {"at": at})
    return task.task_id


def test_retention_drops_old_and_surplus_finished_tasks_from_memory_and_db(tmp_path):
    path = tmp_path / "state.sqlite3"
    db = Database(path)
    db.migrate()
    store = TaskStore(db)
    now = [0.0]
    q = TaskQueue(PRUNE_BATCH * 3, clock=lambda: now[0])
    q.listeners.add(store.save)
    ancient = finished_at(q, now, 0.0, "ancient")
    # Live since long ago: never dropped, however old.
    running = q.submit("t", "running", payload={"rows": [1]})
    q.dispatch()
    pending = q.submit("t", "pending", dependencies=[running.task_id], payload={"rows": [2]})
    # More finished tasks than the database deletes in one batch, all recent.
    many = [finished_at(q, now, 10 * DAY + i, f"n{i}") for i in range(2 * PRUNE_BATCH + 5)]
    now[0] = 10 * DAY + 10_000

    policy = Retention(days=7, max_tasks=3)
    dropped = asyncio.run(apply_retention(policy, q, store))
    assert set(dropped) == {ancient, *many[:-3]}
    kept = [running.task_id, pending.task_id, *many[-3:]]
    assert [t.task_id for t in q.tasks()] == kept
    assert [t.task_id for t in store.load()] == kept
    assert sorted(r[0] for r in db.all("SELECT task_id FROM task_payloads")) == sorted(
        [running.task_id, pending.task_id])
    db.close()

    # After a restart the recent history is still there, and the interrupted task joins it.
    db2 = Database(path)
    db2.migrate()
    store2 = TaskStore(db2)
    q2 = TaskQueue(1, clock=lambda: 10 * DAY + 20_000)
    q2.listeners.add(store2.save)
    q2.restore(store2.load())
    assert [t.task_id for t in store2.history()] == [
        pending.task_id, running.task_id, *reversed(many[-3:])]
    assert q2.get(many[-1]).result == {"at": q2.get(many[-1]).completed_at}
    assert asyncio.run(apply_retention(policy, q2, store2)) == [many[-3], many[-2]]
    assert [t.task_id for t in store2.history()] == [
        pending.task_id, running.task_id, many[-1]]
    assert count(db2, "task_payloads") == 0
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


def test_grouped_changes_commit_the_new_task_at_once_and_the_rest_on_flush(tmp_path):
    path = tmp_path / "grouped.sqlite3"
    db = Database(path)
    db.migrate()
    store = TaskStore(db)
    ticks = itertools.count(100)
    q = TaskQueue(2, clock=lambda: float(next(ticks)), journal=store.record_new)
    q.listeners.add(lambda t: t.status == "pending" or store.save_later(t))
    other = Database(path)  # another connection sees only what is committed

    def stored(task_id):
        row = other.one("SELECT status, progress, result FROM tasks WHERE task_id = ?", (task_id,))
        return None if row is None else (row["status"], row["progress"], row["result"])

    task = q.submit("move", "c1", payload={"blob": "x" * 1000})
    assert stored(task.task_id) == ("pending", 0, "null")  # committed before submit answered
    q.dispatch()
    q.set_progress(task.task_id, 40)
    q.complete(task.task_id, {"size": 5})
    cut = q.submit("move", "c2")
    q.dispatch()
    q.cancel(cut.task_id)
    store.flush()
    assert stored(task.task_id) == ("completed", 100, '{"size":5}')
    assert stored(cut.task_id)[0] == "cancelled"
    assert other.one("SELECT COUNT(*) AS n FROM task_payloads")["n"] == 0  # let go once finished
    late = q.submit("move", "c3")
    q.dispatch()
    store.close()  # what was noted is written before the writer stops
    assert stored(late.task_id)[0] == "running"
    assert [t.record() for t in TaskStore(other).load()] == [t.record() for t in q.tasks()]
    other.close()
    db.close()


def test_a_task_that_cannot_be_recorded_is_refused_and_never_queued(tmp_path):
    db = Database(tmp_path / "full.sqlite3")
    db.migrate()
    store = TaskStore(db)
    q = TaskQueue(2, journal=store.record_new)
    kept = q.submit("move", "c1")
    db.execute("CREATE TRIGGER refuse BEFORE INSERT ON tasks BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    with pytest.raises(InternalError, match="could not be recorded"):
        q.submit("move", "c2")
    assert [t.task_id for t in q.tasks()] == [kept.task_id]  # nothing in memory without its row
    assert [t.task_id for t in TaskStore(db).load()] == [kept.task_id]
    db.close()
