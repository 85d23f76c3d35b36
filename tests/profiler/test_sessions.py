import json

import pytest

from gswarm_jupyter.core.db import Database
from gswarm_jupyter.core.errors import Conflict, NotFound
from gswarm_jupyter.profiler.sessions import SessionStore, read_frames


def _store(tmp_path):
    db = Database(tmp_path / "state.sqlite3")
    db.migrate()
    return db, SessionStore(db, tmp_path / "profiler")


def _frame(seq, cpu):
    return {
        "node": "n1",
        "seq": seq,
        "timestamp_unix_s": 1000.0 + seq,
        "host": {"cpu_utilization_ratio": cpu},
        "gpus": [],
    }


def test_frames_are_on_disk_as_they_arrive_and_stop_summarises(tmp_path):
    db, store = _store(tmp_path)
    session = store.create("run", 100, None, None)
    with pytest.raises(Conflict):
        store.create("run", 100, None, None)
    for seq in range(1, 5):
        store.append(session, _frame(seq, seq / 10))
    store.flush()
    assert [f["seq"] for f in read_frames(session.path)] == [1, 2, 3, 4]
    done = store.finish("run", 2000.0)
    assert done.status == "finished" and done.frames_collected == 4
    assert done.summary["n1"]["host"]["cpu_utilization_ratio"]["max"] == pytest.approx(0.4)
    again = store.get("run")
    assert again.summary == done.summary and again.record()["end_time"].endswith("Z")
    with pytest.raises(NotFound):
        store.get("nope")
    db.close()


def test_a_restart_marks_running_sessions_interrupted_and_keeps_their_frames(tmp_path):
    db, store = _store(tmp_path)
    session = store.create("cut", 50, ["n1"], ["cpu_utilization_ratio"])
    store.append(session, _frame(1, 0.1))
    store.append(session, _frame(2, 0.2))
    store.flush()
    with open(session.path, "a") as f:  # the crash cut the last line in half
        f.write(json.dumps(_frame(3, 0.3))[:20])
    db.close()  # the server dies without closing the session

    db, store = _store(tmp_path)
    assert store.recover() == ["cut"]
    cut = store.get("cut")
    assert cut.status == "interrupted" and cut.frames_collected == 2
    assert cut.end_time == 1002.0 and cut.nodes == ["n1"]
    assert store.summary(cut)["n1"]["host"]["cpu_utilization_ratio"]["count"] == 2
    assert [s.name for s in store.all()] == ["cut"]
    # the name is free again; the new run gets a new file
    fresh = store.create("cut", 50, None, None)
    assert fresh.path != cut.path and store.get("cut").status == "running"
    db.close()


def test_frames_written_in_batches_are_the_lines_json_dumps_wrote_one_by_one(tmp_path):
    from gswarm_jupyter.core.clock import iso, iso_many

    # moments around second boundaries, where rounding the microseconds carries into the second
    moments = [1796014284.7719045, 1000.9999996, 1000.0000004, 1000.9995, 0.0, 1.5e9 + 0.1234565]
    assert [iso_many(t) for t in moments] == [iso(t) for t in moments]
    db, store = _store(tmp_path)
    session = store.create("lines", 100, None, None, {"cell": 3})
    frames = [{**_frame(i + 1, 0.5), "timestamp": iso_many(t), "timestamp_unix_s": t,
               "name": "é\n\""} for i, t in enumerate(moments)]
    for frame in frames:
        store.append(session, frame)
    frames[0]["seq"] = 99  # the caller's later change does not reach the file
    store.flush()
    expected = "".join(
        json.dumps({**f, "seq": i + 1, "tags": {"cell": 3}}, separators=(",", ":")) + "\n"
        for i, f in enumerate(frames)
    )
    assert session.path.read_text() == expected
    db.close()
