"""A 512 MB chunk `node1:dram -> node2:dram` through the data pool (a transfer task over two real
worker processes, bytes carried worker to worker by Dask) against a raw loopback TCP copy of the
same number of bytes (`sendall` / `recv_into` between two threads), in interleaved rounds."""

from __future__ import annotations

import asyncio
import socket
import statistics
import threading
import time

import numpy as np
from distributed import get_worker

from gswarm_jupyter.cluster.storage.chunkstore import ChunkStore, drop_chunk
from gswarm_jupyter.core.data_api import ChunkTransfer

from .cluster import Swarm, swarm
from .harness import Result

SIZE = 512 * 2**20
ROUNDS = 3
SAME_HOST = (
    "the target reads the source's pinned memory into an array of its own with "
    "process_vm_readv, in 64 MiB blocks with a cancellation check between them "
    "(cluster/runtime/memread.py): one copy at memory speed (~9 GB/s here between two "
    "processes, against 2.3-3.5 GB/s for the raw socket's two copies through the kernel); where "
    "the kernel refuses that read (Yama's ptrace_scope 1 and above, a seccomp filter) a /dev/shm "
    "file goes instead (shmcopy: the source writes the bytes into tmpfs's 4 KiB pages at "
    "2.3-2.8 GB/s here, which held this ratio at 0.61-0.78 and the 1 GiB model copy's at "
    "0.65-0.74 in the runs before the read: 0.612 -> 2.187 and 2.441, one run each, this "
    "morning), else the comm.")
CHUNK = "chunk-0000bench0000"


def _make_chunk(chunk_id: str, size: int) -> str:
    """On the worker: a `dram` copy of `size` random-ish bytes (made there, not shipped)."""
    data = np.frombuffer(np.random.default_rng(1).bytes(size), dtype=np.uint8).copy()
    worker = get_worker()
    ChunkStore.of(worker).memory[(chunk_id, "dram")] = data
    return worker.address


async def _transfer(s: Swarm) -> float:
    """Bytes per second of one transfer task, from submit to completion."""
    start = time.perf_counter()
    task = s.pool.transfer(CHUNK, ChunkTransfer(target_node="node2", target_device="dram"))
    done = await s.executor.wait(task.task_id)
    elapsed = time.perf_counter() - start
    assert done.status == "completed", done.error
    assert done.result["size"] == SIZE
    s.pool.registry.copies.remove(CHUNK, "node2", "dram")
    client = s.runtime.client
    assert client is not None
    await client.submit(drop_chunk, CHUNK, "dram", workers=[s.runtime.nodes.get("node2").address],
                        pure=False)
    return SIZE / elapsed


def _socket_copy(size: int) -> float:
    """Bytes per second of `size` bytes over loopback TCP, sender and receiver in two threads."""
    payload = memoryview(np.random.default_rng(2).bytes(size))
    sink = bytearray(size)
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def send() -> None:
            with socket.create_connection(("127.0.0.1", port)) as conn:
                conn.sendall(payload)

        start = time.perf_counter()
        sender = threading.Thread(target=send)
        sender.start()
        conn, _ = server.accept()
        with conn:
            view, got = memoryview(sink), 0
            while got < size:
                n = conn.recv_into(view[got:])
                if not n:
                    break
                got += n
        sender.join()
        elapsed = time.perf_counter() - start
    assert got == size
    return size / elapsed


async def _measure() -> tuple[float, float]:
    async with swarm() as s:
        client = s.runtime.client
        assert client is not None
        address = await client.submit(_make_chunk, CHUNK, SIZE,
                                      workers=[s.runtime.nodes.get("node1").address], pure=False)
        s.pool.registry.create(CHUNK, chunk_type="input", fmt="bytes", size=SIZE, shape=None,
                               dtype=None, created_by="bench")
        s.pool.registry.copies.put(CHUNK, "node1", "dram", "available", worker=address)
        pool, raw = [], []
        for _ in range(ROUNDS):
            pool.append(await _transfer(s))
            raw.append(await asyncio.to_thread(_socket_copy, SIZE))
        return statistics.median(pool), statistics.median(raw)


def run() -> list[Result]:
    pool_rate, raw_rate = asyncio.run(_measure())
    mb = 2**20
    return [
        Result(
            name="transfer_512MB_dram_to_dram_bytes_per_second",
            value=pool_rate / mb,
            unit="MiB/s",
            baseline="raw loopback TCP sendall/recv_into, same bytes, same run",
            baseline_value=raw_rate / mb,
            ratio=pool_rate / raw_rate,
            goal=">= 0.7",
            note=(f"median of {ROUNDS} interleaved rounds, timed from the task's submit to its "
                  "completion. Both nodes' workers run on this host, so the bytes skip the comm: "
                  f"{SAME_HOST} Profiled before: Dask's worker-to-worker comm alone runs at ~0.75 "
                  "of the raw socket (the way between hosts); the target's block-by-block "
                  "staging copy into a fresh 512 MB array (page faults dominate on this VM) cost "
                  "~2 s and held the ratio at 0.17 until ChunkStore.write kept the delivered "
                  "array for unpaced dram writes"),
        )
    ]
