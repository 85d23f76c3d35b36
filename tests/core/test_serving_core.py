"""Pure parts of serving: balancing, percentiles and the request log, sessions' expiry."""

from __future__ import annotations

import pytest

from gswarm_jupyter.core.balancing import Balancer
from gswarm_jupyter.core.compute_store import RequestMap, SessionStore
from gswarm_jupyter.core.db import Database
from gswarm_jupyter.core.errors import NotFound
from gswarm_jupyter.core.stats import RequestLog, percentile


def test_round_robin_cycles_and_least_loaded_prefers_idle():
    rr = Balancer("round_robin")
    assert [rr.pick(["a", "b", "c"], lambda _: 0) for _ in range(4)] == ["a", "b", "c", "a"]
    ll = Balancer("least_loaded")
    load = {"a": 2, "b": 0, "c": 1}
    assert [ll.pick(["a", "b", "c"], load.get) for _ in range(2)] == ["b", "b"]
    load["b"] = 5
    assert ll.pick(["a", "b", "c"], load.get) == "c"


def test_percentile_and_request_log_buckets():
    assert percentile([], 50) is None
    assert percentile([3, 1, 2, 4], 50) == 2 and percentile(range(1, 101), 99) == 99
    now = [1000.0]
    log = RequestLog(clock=lambda: now[0])
    for t, ok in [(1000.0, True), (1010.0, True), (1070.0, False)]:
        now[0] = t
        log.record(0.5, ok, rows=2)
    assert (log.total, log.successful, log.failed) == (3, 2, 1)
    window = log.window(61)
    assert window["requests"] == 2 and window["failed"] == 1  # 1010 and 1070
    buckets = log.history(1000.0, 1120.0, 60)
    assert [b["requests"] for b in buckets] == [2, 1]
    assert buckets[0]["latency_p50"] == 0.5 and buckets[1]["latency_p50"] is None


def test_sessions_expire_and_request_ids_map_to_tasks(tmp_path):
    db = Database(tmp_path / "db.sqlite3")
    db.migrate()
    now = [100.0]
    store = SessionStore(db, clock=lambda: now[0])
    s = store.create("ada", "m", ttl_seconds=10)
    assert store.get(s.session_id) == s and store.live_for_model("m") == [s]
    now[0] = 111.0
    with pytest.raises(NotFound):
        store.get(s.session_id)
    assert store.live_for_model("m") == [] and store.sweep() == [s.session_id]
    requests = RequestMap(db)
    rid = RequestMap.new_id()
    requests.add(rid, "inference-m-1", "m")
    assert requests.task_id(rid) == "inference-m-1"
    with pytest.raises(NotFound):
        requests.task_id("req_x")
