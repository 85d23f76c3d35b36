import pytest

from gswarm_jupyter.core.db import Database
from gswarm_jupyter.core.errors import Conflict, InvalidRequest, NotFound
from gswarm_jupyter.profiler.service import Profiler

from .support import BlockingRead


def _report(node, instance, seqs, sessions):
    return {
        "node": node,
        "info": {"hostname": "h", "gpus": [], "dropped": 0},
        "frames": [
            {
                "node": node,
                "instance": instance,
                "seq": s,
                "timestamp": "t",
                "timestamp_unix_s": 1e9 + s,
                "sessions": list(sessions),
                "host": {"cpu_utilization_ratio": 0.1 * s},
                "gpus": [],
            }
            for s in seqs
        ],
    }


async def _profiler(tmp_path):
    db = Database(tmp_path / "state.sqlite3")
    db.migrate()
    profiler = Profiler(db, tmp_path / "profiler", node_names=lambda: ["n1", "n2"])
    await profiler.start()
    return db, profiler


async def test_a_server_restart_leaves_the_running_session_interrupted_with_its_frames(tmp_path):
    db, profiler = await _profiler(tmp_path)
    await profiler.start_session("long", 10)
    assert profiler.accept_node(_report("n1", "a", [1, 2, 3], ["long"]), "dask") == (3, 0)
    profiler.store.flush()
    # the process dies: no stop, no close; only what reached the file remains
    db.close()

    db, profiler = await _profiler(tmp_path)
    try:
        (record,) = profiler.sessions()
        assert record["status"] == "interrupted" and record["frames_collected"] == 3
        assert record["end_time_unix_s"] == 1e9 + 3
        detail = await profiler.session("long")
        assert detail["summary"]["n1"]["host"]["cpu_utilization_ratio"]["count"] == 3
        assert [f["seq"] for f in profiler.frames("long")] == [1, 2, 3]
        with pytest.raises(Conflict):
            await profiler.stop_session("long")
        assert (await profiler.start_session("long", 10))["status"] == "running"
    finally:
        await profiler.stop()
        db.close()


async def test_frames_go_only_to_the_sessions_that_cover_their_node(tmp_path):
    db, profiler = await _profiler(tmp_path)
    try:
        await profiler.start_session("all", 100)
        await profiler.start_session("n2-only", 50, nodes=["n2"], metrics=["cpu_utilization_ratio"])
        assert profiler.plan("n1") == {"all": 100}
        assert profiler.plan("n2") == {"all": 100, "n2-only": 50}
        # n1 claims a session that does not cover it: not recorded there
        profiler.accept_node(_report("n1", "a", [1], ["all", "n2-only"]), "dask")
        profiler.accept_node(_report("n2", "b", [1, 2], ["n2-only"]), "dask")
        profiler.accept_node(_report("n2", "b", [2, 3], ["all", "n2-only"]), "dask")  # 2 repeats
        assert profiler.acks() == {"n1": ("a", 1), "n2": ("b", 3)}
        assert [c["duplicates"] for c in profiler.clients()] == [0, 1]
        all_ = await profiler.stop_session("all")
        n2 = await profiler.stop_session("n2-only")
        assert all_["frames_collected"] == 2 and n2["frames_collected"] == 3
        assert set(n2["summary"]) == {"n2"}
        for bad in (
            {"name": "x", "sampling_frequency_ms": 9},
            {"name": "x", "sampling_frequency_ms": 3_600_001},  # the gRPC route's uint32 allows it
            {"name": "", "sampling_frequency_ms": 10},
            {"name": "x", "metrics": ["nope"]},
        ):
            with pytest.raises(InvalidRequest):
                await profiler.start_session(**bad)
        with pytest.raises(NotFound):
            await profiler.start_session("x", nodes=["n3"])
        with pytest.raises(NotFound):
            await profiler.stop_session("never")
        # a new sampler instance on a node (worker restarted) starts its numbering afresh
        profiler.accept_node(_report("n2", "c", [1], []), "dask")
        assert profiler.acks()["n2"] == ("c", 1)
    finally:
        await profiler.stop()
        db.close()


async def test_a_stop_summarises_off_the_event_loop_and_a_second_stop_meanwhile_conflicts(
    tmp_path, monkeypatch
):
    """Stopping reads the session's whole file: on a thread, the loop answering meanwhile."""
    import asyncio

    db, profiler = await _profiler(tmp_path)
    try:
        await profiler.start_session("big", 10)
        profiler.accept_node(_report("n1", "a", [1, 2, 3], ["big"]), "dask")
        spy = BlockingRead(monkeypatch)
        stop = asyncio.create_task(profiler.stop_session("big"))
        await asyncio.to_thread(spy.entered.wait)  # summarising now
        assert not profiler.status()["is_profiling"]
        with pytest.raises(Conflict, match="is stopping"):
            await profiler.stop_session("big")
        with pytest.raises(Conflict, match="already running"):
            await profiler.start_session("big", 10)
        assert profiler.accept_node(_report("n1", "a", [4], ["big"]), "dask") == (1, 0)
        assert [s["status"] for s in profiler.sessions()] == ["running"]
        spy.release.set()
        detail = await stop
        assert spy.off_loop
        assert detail["status"] == "finished" and detail["frames_collected"] == 3
        assert detail["summary"]["n1"]["host"]["cpu_utilization_ratio"]["count"] == 3
        assert [f["seq"] for f in profiler.frames("big")] == [1, 2, 3]
        with pytest.raises(Conflict, match="not running"):
            await profiler.stop_session("big")
    finally:
        await profiler.stop()
        db.close()


async def test_a_stop_whose_summary_fails_leaves_the_session_running_with_its_frames(
    tmp_path, monkeypatch
):
    db, profiler = await _profiler(tmp_path)
    try:
        await profiler.start_session("big", 10)
        profiler.accept_node(_report("n1", "a", [1, 2], ["big"]), "dask")
        spy = BlockingRead(monkeypatch, fail_once=True)
        spy.release.set()
        with pytest.raises(OSError, match="the disk failed"):
            await profiler.stop_session("big")
        assert profiler.status()["is_profiling"] and profiler.plan("n1") == {"big": 10}
        profiler.accept_node(_report("n1", "a", [3], ["big"]), "dask")
        detail = await profiler.stop_session("big")
        assert detail["frames_collected"] == 3 and spy.off_loop
        assert detail["summary"]["n1"]["host"]["cpu_utilization_ratio"]["count"] == 3
    finally:
        await profiler.stop()
        db.close()


async def test_a_stop_whose_caller_goes_meanwhile_still_finishes_the_session(
    tmp_path, monkeypatch
):
    """A gRPC client cancelling its StopProfiling cancels the call, not the stop under way."""
    import asyncio

    db, profiler = await _profiler(tmp_path)
    try:
        await profiler.start_session("big", 10)
        profiler.accept_node(_report("n1", "a", [1, 2], ["big"]), "dask")
        spy = BlockingRead(monkeypatch)
        stop = asyncio.create_task(profiler.stop_session("big"))
        await asyncio.to_thread(spy.entered.wait)
        stop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stop
        spy.release.set()
        for _ in range(10_000):  # until the stop under way has ended (no time limit asserted)
            if profiler.sessions()[0]["status"] != "running":
                break
            await asyncio.sleep(0.01)
        (record,) = profiler.sessions()
        assert record["status"] == "finished" and record["frames_collected"] == 2
        assert (await profiler.session("big"))["summary"]["n1"]["host"][
            "cpu_utilization_ratio"]["count"] == 2
    finally:
        await profiler.stop()
        db.close()


async def test_a_running_session_detail_and_the_recovery_read_files_off_the_event_loop(
    tmp_path, monkeypatch
):
    db, profiler = await _profiler(tmp_path)
    await profiler.start_session("cut", 10)
    profiler.accept_node(_report("n1", "a", [1, 2], ["cut"]), "dask")
    spy = BlockingRead(monkeypatch)
    spy.release.set()
    detail = await profiler.session("cut")
    assert detail["summary"]["n1"]["host"]["cpu_utilization_ratio"]["count"] == 2
    assert spy.off_loop
    db.close()  # the server dies: the next start recovers the session

    spy.threads.clear()
    db, profiler = await _profiler(tmp_path)
    try:
        assert [s["status"] for s in profiler.sessions()] == ["interrupted"]
        assert spy.off_loop
    finally:
        await profiler.stop()
        db.close()
