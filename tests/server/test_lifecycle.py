"""The server and its cluster start and stop together, leaving nothing behind."""

from __future__ import annotations

import json
import signal

import psutil
import pytest

from gswarm_jupyter.testing import LiveServer, free_port


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_the_server_stops_every_worker_process(tmp_path, sig):
    server = LiveServer(tmp_path, nodes=2).start()
    try:
        _stop_and_check(server, sig)
    finally:
        server.stop(signal.SIGKILL)  # a failed check must not leave a server behind


def _stop_and_check(server: LiveServer, sig: int) -> None:
    assert server.proc is not None
    workers = descendants(server.proc.pid)
    assert len([p for p in workers if "python" in p.name()]) >= 2  # real worker processes
    connection = server.runtime_dir / f"gswarm-{server.proc.pid}.json"
    info = json.loads(connection.read_text())
    assert info["url"].endswith(f":{server.port}/") and info["token"] == server.token
    assert connection.stat().st_mode & 0o077 == 0  # the token is readable by its owner only

    server.stop(sig)  # without a terminal Jupyter asks nothing: one SIGINT stops it
    _, alive = psutil.wait_procs(workers, timeout=20)
    assert alive == [], f"orphans left behind: {alive}"
    assert not connection.exists()


async def test_health_is_degraded_while_the_scheduler_is_unreachable(jp_serverapp, jp_fetch, jp_asyncio_loop):
    # jp_server_config below points the extension at a scheduler that does not exist
    await jp_serverapp.extension_manager.start_all_extensions()
    for _ in range(100):
        response = await jp_fetch("gswarm", "api", "v1", "health")
        health = json.loads(response.body)["data"]
        if health["reason"] and "cannot reach" in health["reason"]:
            break
        await __import__("asyncio").sleep(0.1)
    assert response.code == 200
    assert health["status"] == "degraded"
    assert health["scheduler"] == {
        "address": health["scheduler"]["address"],
        "embedded": False,
        "connected": False,
        "reason": health["reason"],
        "dashboard_path": None,  # no dashboard of a scheduler it cannot reach
    }
    assert health["nodes_online"] == 0


@pytest.fixture
def gswarm_config(gswarm_config):
    gswarm_config["scheduler_address"] = f"tcp://127.0.0.1:{free_port()}"
    return gswarm_config
