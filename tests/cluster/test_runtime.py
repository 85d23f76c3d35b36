"""The cluster runtime against real Dask: nodes come and go, the scheduler may be missing."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from distributed import Scheduler, Worker

from gswarm_jupyter.cluster.runtime.cluster import ClusterConfig, ClusterRuntime
from gswarm_jupyter.testing import free_port


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


def status(runtime: ClusterRuntime, name: str) -> str | None:
    try:
        return runtime.nodes.get(name).summary()["status"]
    except Exception:
        return None


async def test_a_killed_worker_goes_offline_and_its_restart_comes_back(tmp_path):
    runtime = ClusterRuntime(
        ClusterConfig(local_nodes=2, local_processes=True, data_dir=tmp_path, worker_memory_limit="1GiB")
    )
    changes = []
    runtime.listeners.add(changes.append)
    outside = os.environ.get("OMP_NUM_THREADS")
    await runtime.start()
    try:
        await runtime.wait_ready(120)
        # worker processes may use their node's threads for torch and BLAS (Dask's default is 1),
        # from their first instruction, and the nannies leave this process's environment alone
        threads = await runtime.client.run(lambda: os.environ.get("OMP_NUM_THREADS"))
        assert set(threads.values()) == {str(runtime.config.threads_per_node)}
        assert os.environ.get("OMP_NUM_THREADS") == outside
        node1 = runtime.nodes.get("node1")
        pid = node1.report["pid"]
        assert pid != os.getpid()  # a real worker process
        exec_env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert f"OMP_NUM_THREADS={runtime.config.threads_per_node}".encode() in exec_env
        if "MALLOC_ARENA_MAX" not in os.environ:  # glibc's arena per thread (see allocator)
            assert not any(var.startswith(b"MALLOC_ARENA_MAX=") for var in exec_env)
        # Dask's stack sampling is off in node workers (it took the GIL from training 100/s)
        sampling = await runtime.client.run(
            lambda dask_worker: "profile" in dask_worker.periodic_callbacks)
        assert set(sampling.values()) == {False}
        os.kill(pid, signal.SIGKILL)
        await until(lambda: status(runtime, "node1") == "offline", timeout=10)
        assert status(runtime, "node2") == "online"
        # the nanny restarts it: the node comes back as a new process
        await until(lambda: status(runtime, "node1") == "online", timeout=60)
        assert runtime.nodes.get("node1").report["pid"] != pid
        assert os.environ.get("OMP_NUM_THREADS") == outside
        assert [(c.node, c.status) for c in changes if c.node == "node1"][-2:] == [
            ("node1", "offline"),
            ("node1", "online"),
        ]
    finally:
        await runtime.stop()


async def test_a_worker_that_joins_becomes_a_node_and_leaves_offline(tmp_path):
    runtime = ClusterRuntime(ClusterConfig(local_nodes=1, local_processes=False, data_dir=tmp_path))
    await runtime.start()
    try:
        await runtime.wait_ready(60)
        # a worker holding the cluster's credentials joins (the cluster speaks TLS only)
        worker = await Worker(
            runtime.scheduler_address, name="node7", nthreads=1, security=runtime.security
        )
        await until(lambda: status(runtime, "node7") == "online")
        report = runtime.nodes.get("node7").report
        assert report["store"].endswith("node7") and report["devices"]["disk"]["total"] > 0
        await worker.close()
        await until(lambda: status(runtime, "node7") == "offline")
        assert status(runtime, "node1") == "online"
    finally:
        await runtime.stop()


async def test_an_unreachable_scheduler_degrades_and_recovers_when_it_appears(tmp_path):
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    runtime = ClusterRuntime(
        ClusterConfig(scheduler_address=address, data_dir=tmp_path, connect_timeout=1.0)
    )
    await runtime.start()
    try:
        await until(lambda: runtime.reason is not None and "cannot reach" in runtime.reason)
        assert not runtime.connected and runtime.nodes.all() == []
        scheduler = await Scheduler(port=port, dashboard_address=":0")
        worker = await Worker(scheduler.address, name="gpu-host-1", nthreads=1)
        try:
            await until(lambda: runtime.connected and status(runtime, "gpu-host-1") == "online", 60)
            # an external worker keeps its store on its own host, beside (not in) its scratch
            # folder, which Dask deletes when the worker closes
            store = Path(runtime.nodes.get("gpu-host-1").report["store"])
            assert store == Path(worker.local_directory).parent / "gswarm-nodes" / "gpu-host-1"
        finally:
            await worker.close()
            await scheduler.close()
        await until(lambda: not runtime.connected, 30)
        assert "scheduler" in runtime.reason
    finally:
        await runtime.stop()
