"""Who can reach the Dask cluster: the embedded one speaks mutual TLS with credentials of its own
and serves HTTP on no TCP port (its scheduler's dashboard on a unix socket only); an external TLS scheduler is reached with the configured files.
Loopback only."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from pathlib import Path

import psutil
import pytest
from distributed import Client, Worker
from distributed.security import Security

from gswarm_jupyter.cluster.runtime.embedded import HttpFreeScheduler
from gswarm_jupyter.cluster.runtime.cluster import ClusterConfig, ClusterRuntime
from gswarm_jupyter.cluster.runtime.security import SchedulerTls
from gswarm_jupyter.server.unix_http import serve_on_unix_socket


def _listening_ports(pids: list[int]) -> set[int]:
    ports = set()
    for pid in pids:
        try:
            connections = psutil.Process(pid).net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        ports.update(c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN)
    return ports


def _family() -> list[int]:
    me = psutil.Process()
    return [me.pid, *(p.pid for p in me.children(recursive=True))]


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


async def test_the_embedded_cluster_admits_only_peers_holding_its_credentials(tmp_path):
    runtime = ClusterRuntime(ClusterConfig(local_nodes=1, local_processes=False, data_dir=tmp_path))
    await runtime.start()
    try:
        await runtime.wait_ready(60)
        address = runtime.scheduler_address
        assert address.startswith("tls://127.0.0.1:")
        assert runtime.scheduler_info()["address"] == address
        # the server's own client holds them: it runs tasks on the nodes
        assert await runtime.run_on("node1", sum, [1, 2], timeout=30) == 3
        # a plain TCP client on the same port, and a TLS client with credentials of its own
        for target, security in (
            (address.replace("tls://", "tcp://"), None),
            (address, Security.temporary()),
        ):
            client = Client(target, asynchronous=True, timeout=3, security=security)
            try:
                with pytest.raises(OSError):
                    await client
            finally:
                await client.close()
        assert [n.name for n in runtime.nodes.all()] == ["node1"]
    finally:
        await runtime.stop()


async def test_no_part_of_the_embedded_cluster_listens_for_http_on_a_port(tmp_path):
    before = _listening_ports(_family())
    runtime = ClusterRuntime(
        ClusterConfig(local_nodes=2, local_processes=True, data_dir=tmp_path,
                      worker_memory_limit="1GiB"),
        serve_http=serve_on_unix_socket,  # as the server's app gives it
    )
    await runtime.start()
    try:
        await runtime.wait_ready(120)
        scheduler = runtime.cluster.scheduler
        assert scheduler.services == {}
        # its HTTP (the dashboard) on a unix socket only, in a folder of the server's alone
        assert {s.family for s in scheduler.http_server._sockets.values()} == {socket.AF_UNIX}
        sock = Path(runtime.dashboard_socket)
        assert sock.parent == tmp_path / "dask-http"
        assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
        identity = await runtime.client.scheduler.identity()
        workers = identity["workers"]
        assert sorted(w["name"] for w in workers.values()) == ["node1", "node2"]
        assert all(w["services"] == {} for w in workers.values())
        pids = [runtime.nodes.get(name).report["pid"] for name in ("node1", "node2")]
        assert os.getpid() not in pids  # real worker processes
        # every port the server and its workers opened is a Dask comm port (TLS): nothing else
        expected = {_port(identity["address"])}
        expected |= {_port(a) for a in workers} | {_port(w["nanny"]) for w in workers.values()}
        assert _listening_ports(_family()) - before == expected
    finally:
        await runtime.stop()


def _write_pems(security: Security, folder: Path) -> SchedulerTls:
    """The in-memory PEMs of a temporary `Security` as files, as an operator would have them."""
    files = {}
    for name, pem in (
        ("ca.pem", security.tls_ca_file),
        ("cert.pem", security.tls_client_cert),
        ("key.pem", security.tls_client_key),
    ):
        files[name] = folder / name
        files[name].write_text(pem)
    return SchedulerTls(str(files["ca.pem"]), str(files["cert.pem"]), str(files["key.pem"]))


async def test_an_external_tls_scheduler_is_reached_with_the_configured_files(tmp_path):
    security = Security.temporary()
    scheduler = await HttpFreeScheduler(
        host="127.0.0.1", port=0, protocol="tls://", security=security, dashboard=False
    )
    worker = await Worker(
        scheduler.address, name="gpu-host-1", nthreads=1, security=security, host="127.0.0.1"
    )
    tls = _write_pems(security, tmp_path)
    without = ClusterRuntime(
        ClusterConfig(scheduler_address=scheduler.address, data_dir=tmp_path / "a",
                      connect_timeout=1.0)
    )
    runtime = ClusterRuntime(
        ClusterConfig(scheduler_address=scheduler.address, data_dir=tmp_path / "b",
                      scheduler_tls=tls)
    )
    await without.start()
    await runtime.start()
    try:
        await runtime.wait_ready(60)
        assert runtime.connected and [n.name for n in runtime.nodes.all()] == ["gpu-host-1"]
        assert runtime.dashboard_socket is None  # an external scheduler's dashboard is not ours
        assert runtime.security.require_encryption
        # without the files the server keeps saying why it cannot reach the scheduler
        for _ in range(100):
            if without.reason and "cannot reach" in without.reason:
                break
            await asyncio.sleep(0.1)
        assert not without.connected and "cannot reach" in without.reason
    finally:
        await without.stop()
        await runtime.stop()
        await worker.close()
        await scheduler.close()
