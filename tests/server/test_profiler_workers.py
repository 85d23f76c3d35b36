"""Sampling on real worker processes."""

import asyncio

import pytest

P = "gswarm/api/v1/profiler"


@pytest.fixture
def gswarm_config(gswarm_config):
    gswarm_config["local_processes"] = True
    return gswarm_config


async def test_samplers_run_in_the_worker_processes(api, gswarm_app):
    status, body, _ = await api(
        "POST", f"{P}/profiling/start", body={"name": "procs", "sampling_frequency_ms": 50}
    )
    assert status == 201, body
    await asyncio.sleep(1.0)
    status, body, _ = await api("POST", f"{P}/profiling/stop", body={"name": "procs"})
    assert status == 200, body
    assert set(body["data"]["summary"]) == {"node1", "node2"}
    frames = (await api("GET", f"{P}/profiling/sessions/procs"))[1]["data"]["frames"]
    by_node = {n: [f for f in frames if f["node"] == n] for n in ("node1", "node2")}
    for node, mine in by_node.items():
        assert len(mine) >= 5, node
        seqs = [f["seq"] for f in mine]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), node  # nothing lost on the way
    # two samplers, each in its own worker process, with its own instance
    assert len({f["instance"] for f in frames}) == 2
    client = gswarm_app.context.runtime.client
    pids = await client.run(__import__("os").getpid)
    assert len(set(pids.values())) == 2 and __import__("os").getpid() not in pids.values()
