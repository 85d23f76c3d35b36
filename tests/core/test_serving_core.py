"""Pure parts of serving: balancing, percentiles and the request log, sessions' expiry."""

from __future__ import annotations

import pytest

from gswarm_jupyter.core.balancing import Balancer
from gswarm_jupyter.core.compute_store import RequestMap, SessionStore
from gswarm_jupyter.core.db import Database
from gswarm_jupyter.core.errors import NotFound
from gswarm_jupyter.core.recovery import restart_node, retry_delay
from gswarm_jupyter.core.service_store import ServiceStore, StoredReplica, StoredService
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


def test_session_pins_and_services_outlive_their_database_connection(tmp_path):
    db = Database(tmp_path / "db.sqlite3")
    db.migrate()
    sessions = SessionStore(db)
    s = sessions.create("ada", "m", ttl_seconds=60)
    assert s.replica_id is None
    sessions.pin(s.session_id, "m-node1-dram-3.1")
    services = ServiceStore(db)
    assert services.next_number() == 1
    replicas = [StoredReplica("m-node1-dram-3", "node1", "dram"),
                StoredReplica("m-node1-dram-3.1", "node2", "dram")]
    services.add(StoredService(3, "m-node1-dram-3", {"name": "m"}, {"replicas": 2},
                               ["node1", "node2"], replicas, created_at=100.0))
    services.add(StoredService(4, "m-node1-dram-4", {"name": "m"}, {}, None, replicas[:1]))
    services.remove("m-node1-dram-4")
    db.close()

    db = Database(tmp_path / "db.sqlite3")  # what a restarted server opens
    db.migrate()
    assert SessionStore(db).get(s.session_id).replica_id == "m-node1-dram-3.1"
    services = ServiceStore(db)
    [kept] = services.all()
    assert (kept.service_id, kept.model, kept.config, kept.nodes, kept.replicas, kept.created_at) == (
        "m-node1-dram-3", {"name": "m"}, {"replicas": 2}, ["node1", "node2"], replicas, 100.0)
    assert services.next_number() == 5  # a stopped service's number is not given again
    moved = [replicas[0], StoredReplica("m-node1-dram-3.1", "node1", "dram")]
    services.place("m-node1-dram-3", moved)
    assert services.all()[0].replicas == moved


def test_a_down_replica_goes_home_first_and_elsewhere_only_after_the_grace_period():
    online = {"node1": {"dram", "disk"}, "node3": {"dram", "gpu0"}, "node4": {"dram"}}
    assert restart_node("node1", "dram", online, None, down_for=0, load={}) == "node1"
    # its node is away: wait, then the eligible node with the fewest of the service's replicas
    assert restart_node("node2", "dram", online, None, down_for=5, load={}) is None
    assert restart_node("node2", "dram", online, None, down_for=31, load={"node1": 1}) == "node3"
    assert restart_node("node2", "dram", online, None, 31, {"node1": 1, "node3": 1}) == "node4"
    assert restart_node("node2", "gpu0", online, None, down_for=31, load={}) == "node3"
    # only the nodes the service was placed on, and only those with the device
    assert restart_node("node2", "dram", online, ["node2", "node4"], 31, {}) == "node4"
    assert restart_node("node2", "dram", online, ["node2"], down_for=3600, load={}) is None
    assert restart_node("node2", "gpu1", online, None, down_for=3600, load={}) is None
    assert restart_node("node2", "dram", online, None, 2, {}, elsewhere_after=1) == "node1"
    assert [retry_delay(n) for n in (1, 2, 3, 7, 50)] == [1, 2, 4, 60, 60]
