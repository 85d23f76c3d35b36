import pytest

from gswarm_jupyter.core.errors import NotFound
from gswarm_jupyter.core.nodes import NodeChange, NodeDirectory, WorkerSeen

REPORT = {
    "hostname": "h1",
    "cpu": {"cores": 4, "usage": 0.25},
    "devices": {"disk": {"total": 100, "used": 40, "available": 60}},
    "gpus": [],
    "vgpus": [],
}


def seen(name: str, last_seen: float, report=REPORT, threads: int = 2) -> WorkerSeen:
    return WorkerSeen(name, f"tcp://{name}:1", "10.0.0.1", last_seen, 1 << 30, report, threads)


def test_first_sight_brings_nodes_online():
    nodes = NodeDirectory(stale_after=5)
    changes = nodes.observe([seen("node1", 100), seen("node2", 100)], now=101)
    assert changes == [NodeChange("node1", "online"), NodeChange("node2", "online")]
    assert [n.summary()["status"] for n in nodes.all()] == ["online", "online"]


def test_a_worker_gone_from_the_scheduler_goes_offline_and_keeps_its_last_heartbeat():
    nodes = NodeDirectory(stale_after=5)
    nodes.observe([seen("node1", 100), seen("node2", 100)], now=101)
    changes = nodes.observe([seen("node1", 102)], now=102)
    assert changes == [NodeChange("node2", "offline")]
    node2 = nodes.get("node2").summary()
    assert node2["status"] == "offline" and node2["last_heartbeat"].startswith("1970-01-01T00:01:40")


def test_threads_count_the_online_nodes_workers_alone():
    nodes = NodeDirectory(stale_after=5)
    nodes.observe([seen("node1", 100, threads=2), seen("node2", 100, threads=3)], now=101)
    assert nodes.threads() == 5
    nodes.observe([seen("node1", 102, threads=4)], now=102)  # node2 gone, node1 grew
    assert nodes.threads() == 4


def test_a_stale_heartbeat_is_offline_even_while_the_scheduler_lists_it():
    nodes = NodeDirectory(stale_after=5)
    nodes.observe([seen("node1", 100)], now=101)
    assert nodes.observe([seen("node1", 100)], now=106) == [NodeChange("node1", "offline")]
    assert nodes.observe([seen("node1", 107)], now=107) == [NodeChange("node1", "online")]


def test_unchanged_status_reports_no_change():
    nodes = NodeDirectory()
    nodes.observe([seen("node1", 100)], now=100)
    assert nodes.observe([seen("node1", 101)], now=101) == []


def test_records_follow_the_contract():
    nodes = NodeDirectory()
    nodes.observe([seen("node1", 100)], now=100)
    node = nodes.get("node1")
    assert node.summary()["capabilities"]["storage"] == {"disk": 100}
    assert node.detail()["devices"]["disk"] == {"total": 100, "used": 40, "available": 60}
    assert node.resources()["compute"]["cpu"] == {"cores": 4, "usage": 0.25}


def test_unknown_node_is_not_found():
    with pytest.raises(NotFound):
        NodeDirectory().get("node9")


def test_nodes_sort_naturally():
    nodes = NodeDirectory()
    nodes.observe([seen("node10", 1), seen("node2", 1), seen("node1", 1)], now=1)
    assert nodes.names() == ["node1", "node2", "node10"]


def test_losing_the_scheduler_takes_every_node_offline():
    nodes = NodeDirectory()
    nodes.observe([seen("node1", 1), seen("node2", 1)], now=1)
    assert len(nodes.mark_all_offline()) == 2
    assert nodes.online() == []


def test_memory_of_a_worker_the_scheduler_dropped_is_gone_even_while_its_node_is_down():
    nodes = NodeDirectory(stale_after=5)
    nodes.observe([seen("node1", 100)], now=100)
    node = nodes.get("node1")
    assert node.may_hold_memory_of("tcp://node1:1")
    nodes.observe([], now=101)  # dropped (killed): whatever it held in memory went with it
    assert not node.online and not node.may_hold_memory_of("tcp://node1:1")
    back = WorkerSeen("node1", "tcp://node1:2", "10.0.0.1", 102, 1 << 30, REPORT)
    nodes.observe([back], now=102)  # a new process under the same name
    assert node.may_hold_memory_of("tcp://node1:2")
    assert not node.may_hold_memory_of("tcp://node1:1")


def test_a_late_heartbeat_or_a_lost_scheduler_does_not_say_memory_is_gone():
    nodes = NodeDirectory(stale_after=5)
    nodes.observe([seen("node1", 100), seen("node2", 100)], now=100)
    nodes.observe([seen("node1", 100), seen("node2", 106)], now=106)  # node1 stale, still listed
    assert not nodes.get("node1").online and nodes.get("node1").may_hold_memory_of("tcp://node1:1")
    nodes.mark_all_offline()  # cannot see the workers: cannot say they died
    assert nodes.get("node2").may_hold_memory_of("tcp://node2:1")
