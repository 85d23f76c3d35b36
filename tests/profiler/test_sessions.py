import base64
import json

import pytest

from gswarm_jupyter.core.db import Database
from gswarm_jupyter.core.errors import Conflict, NotFound
from gswarm_jupyter.profiler._proto import profiler_pb2 as pb
from gswarm_jupyter.profiler.convert import frame_from_proto
from gswarm_jupyter.profiler.framefile import message_line, read_frames
from gswarm_jupyter.profiler.frames import keep_metrics
from gswarm_jupyter.profiler.sessions import SessionStore


def _store(tmp_path):
    db = Database(tmp_path / "state.sqlite3")
    db.migrate()
    return db, SessionStore(db, tmp_path / "profiler")


def _message(seq, cpu):
    return pb.Frame(node="n1", instance="i", seq=seq, timestamp_unix_s=1000.0 + seq,
                    sessions=["mixed"], host=pb.HostMetrics(cpu_utilization_ratio=cpu))


def _frame(seq, cpu):
    return {
        "node": "n1",
        "seq": seq,
        "timestamp_unix_s": 1000.0 + seq,
        "host": {"cpu_utilization_ratio": cpu},
        "gpus": [],
    }


async def test_frames_are_on_disk_as_they_arrive_and_stop_summarises(tmp_path):
    db, store = _store(tmp_path)
    session = store.create("run", 100, None, None)
    with pytest.raises(Conflict):
        store.create("run", 100, None, None)
    for seq in range(1, 5):
        store.append(session, _frame(seq, seq / 10))
    store.flush()
    assert [f["seq"] for f in read_frames(session.path)] == [1, 2, 3, 4]
    done = await store.finish("run", 2000.0)
    assert done.status == "finished" and done.frames_collected == 4
    assert done.summary["n1"]["host"]["cpu_utilization_ratio"]["max"] == pytest.approx(0.4)
    again = store.get("run")
    assert again.summary == done.summary and again.record()["end_time"].endswith("Z")
    with pytest.raises(NotFound):
        store.get("nope")
    db.close()


async def test_a_restart_marks_running_sessions_interrupted_and_keeps_their_frames(tmp_path):
    db, store = _store(tmp_path)
    session = store.create("cut", 50, ["n1"], ["cpu_utilization_ratio"])
    store.append(session, _frame(1, 0.1))
    store.append_message(session, _message(2, 0.2).SerializeToString())
    store.flush()
    with open(session.path, "ab") as f:  # the crash cut the last line in half
        f.write(message_line(_message(3, 0.3).SerializeToString())[:30])
    db.close()  # the server dies without closing the session

    db, store = _store(tmp_path)
    assert await store.recover() == ["cut"]
    cut = store.get("cut")
    assert cut.status == "interrupted" and cut.frames_collected == 2
    assert cut.end_time == 1002.0 and cut.nodes == ["n1"]
    assert (await store.summary(cut))["n1"]["host"]["cpu_utilization_ratio"]["count"] == 2
    assert [s.name for s in store.all()] == ["cut"]
    # the name is free again; the new run gets a new file
    fresh = store.create("cut", 50, None, None)
    assert fresh.path != cut.path and store.get("cut").status == "running"
    db.close()


async def test_a_session_file_from_before_reads_and_recovers_as_it_did(tmp_path):
    db, store = _store(tmp_path)
    session = store.create("old", 50, None, None)
    store.close()
    lines = [json.dumps({**_frame(seq, seq / 10), "tags": {"cell": 1}}) for seq in (1, 2)]
    session.path.write_text(lines[0] + "\n" + lines[1] + "\n" + lines[1][:15])
    db.close()

    db, store = _store(tmp_path)
    assert await store.recover() == ["old"]
    again = store.get("old")
    assert again.frames_collected == 2 and again.end_time == 1002.0
    assert list(store.frames(again)) == [json.loads(line) for line in lines]
    db.close()


async def test_agent_messages_stored_as_they_came_read_back_as_their_json_lines_did(tmp_path):
    """What reading answers for a frame stored as its message is what the JSON line of its dict
    held (the session's metrics kept, its tags added), in arrival order among dict frames."""
    db, store = _store(tmp_path)
    metrics, tags = ["cpu_utilization_ratio", "power_watts"], {"cell": 7, "who": ["a"]}
    session = store.create("mixed", 100, None, metrics, tags)
    message = _message(1, 0.25)
    message.host.memory_used_bytes = 5
    gpu = message.gpus.add(device="gpu0", power_watts=71.5, utilization_ratio=0.5)
    gpu.processes.add(pid=9)
    store.append_message(session, message.SerializeToString())
    store.append(session, keep_metrics(_frame(2, 0.5), metrics))
    store.append_message(session, _message(3, 0.75).SerializeToString())
    store.flush()
    was = [
        json.loads(json.dumps({**keep_metrics(frame_from_proto(m), metrics), "tags": tags}))
        for m in (message, _message(3, 0.75))
    ]
    lines = session.path.read_bytes().splitlines()
    assert [json.loads(line) for line in lines][0] == {  # one JSON object per line
        "gswarm.v1.Frame": base64.b64encode(message.SerializeToString()).decode()}
    got = list(store.frames(session))
    assert got == [was[0], {**keep_metrics(_frame(2, 0.5), metrics), "tags": tags}, was[1]]
    with open(session.path, "ab") as f:  # whole, but its newline lost
        f.write(message_line(_message(3, 0.75).SerializeToString()).rstrip(b"\n"))
    assert list(store.frames(session)) == [*got, was[1]]
    assert got[0]["gpus"] == [{"device": "gpu0", "power_watts": 71.5,
                               "processes": [{"pid": 9, "used_memory_bytes": None}]}]
    assert list(got[0]["host"]) == ["cpu_utilization_ratio"] and got[0]["sessions"] == ["mixed"]
    assert got[0]["timestamp"] == "1970-01-01T00:16:41.000Z"
    assert (await store.finish("mixed", 2000.0)).summary["n1"]["host"]["cpu_utilization_ratio"][
        "count"] == 4
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
