"""The audit log's rows written in groups by a thread of their own, over a real SQLite file."""

import logging
import threading

from gswarm_jupyter.core.audit import AuditEvent, AuditLog
from gswarm_jupyter.core.db import Database


def event(identity: str, n: int, status: int = 200) -> AuditEvent:
    return AuditEvent(identity, None, "POST", f"/gswarm/api/v1/data/{n}", ("data",), "write",
                      status)


def stored(path) -> list[tuple[str, str]]:
    other = Database(path)
    try:
        return [(r["identity"], r["route"])
                for r in other.all("SELECT identity, route FROM audit_events ORDER BY seq")]
    finally:
        other.close()


def test_rows_from_several_threads_all_arrive_in_order_per_thread(tmp_path):
    db = Database(tmp_path / "state.sqlite3")
    db.migrate()
    audit = AuditLog(db)

    def append(name: str) -> None:
        for n in range(200):
            audit.append(event(name, n))

    threads = [threading.Thread(target=append, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    audit.flush()
    rows = stored(db.path)
    assert len(rows) == 800
    for i in range(4):
        mine = [route for identity, route in rows if identity == f"t{i}"]
        assert mine == [f"/gswarm/api/v1/data/{n}" for n in range(200)]
    audit.close()
    db.close()


def test_append_never_touches_sqlite_and_query_sees_it(tmp_path):
    db = Database(tmp_path / "state.sqlite3")
    db.migrate()
    audit = AuditLog(db)
    other = Database(db.path)
    other.execute("BEGIN IMMEDIATE")  # the write lock held: a write on the caller's thread fails
    try:
        audit.append(event("key:a", 1, 403))  # returns at once, noted only
        audit.append(event("key:a", 2))
    finally:
        other.execute("COMMIT")
        other.close()
    events, total = audit.query()  # flushes first: both appended before it are there
    assert total == 2
    assert [(e["route"], e["decision"]) for e in events] == [
        ("/gswarm/api/v1/data/1", "denied"), ("/gswarm/api/v1/data/2", "allowed"),
    ]
    audit.append(event("key:b", 3))
    assert audit.query(decision="allowed")[1] == 2  # appended just before the query
    audit.close()
    db.close()


def test_close_writes_what_is_noted_and_a_later_append_only_warns(tmp_path, caplog):
    db = Database(tmp_path / "state.sqlite3")
    db.migrate()
    audit = AuditLog(db)
    for n in range(50):
        audit.append(event("key:a", n))
    audit.close()
    assert len(stored(db.path)) == 50
    with caplog.at_level(logging.WARNING, logger="gswarm_jupyter.core.audit"):
        audit.append(event("key:a", 50))  # after close: logged, not raised
    assert "not written to the audit log" in caplog.text
    assert len(stored(db.path)) == 50
    db.close()
