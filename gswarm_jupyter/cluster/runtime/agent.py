"""The node agent: a Dask `WorkerPlugin` on every worker, which makes the worker a gswarm node.

It owns the node's store folder (and, at start, sweeps the shared-memory copy files its
previous process left, `shmcopy`) and reports the node's devices with each Dask heartbeat, as the
worker metric `gswarm`, so the server learns capacities without an extra round trip.
Worker-side stores (chunks, model weights) find the agent with `NodeAgent.of(worker)`.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

from distributed import Worker, WorkerPlugin

from ...backends.devices import torch_gpus
from ...backends.nvml import NvmlProbe
from ...core.heap import release, settle
from .allocator import tune_heap
from .dask_profiler import stop_stack_sampling
from .devices import (
    disk_usage,
    dram_usage,
    gpu_usage,
    host_cpu,
    nvml_gpus,
    process_rss,
)
from .shmfiles import boot_id, sweep

log = logging.getLogger(__name__)

PLUGIN_NAME = "gswarm-agent"
METRIC = "gswarm"


class NodeAgent(WorkerPlugin):
    name = PLUGIN_NAME

    def __init__(self, store_root: str | None = None) -> None:
        # `store_root` None: beside the worker's scratch folder on its own host. Not inside it:
        # Dask deletes a worker's scratch folder when the worker closes, and disk copies must
        # outlive a worker restart.
        self.store_root = store_root
        self.worker: Worker | None = None
        self.store: Path | None = None
        self._gpus: NvmlProbe | None = None
        self._torch_gpus: list[dict[str, Any]] = []
        self._boot_id: str | None = None

    def setup(self, worker: Worker) -> None:
        self.worker = worker
        tune_heap()  # see allocator: Dask's trim setting froze the mmap threshold at 128 KiB
        stop_stack_sampling(worker)  # see dask_profiler: it took the GIL 100 times a second
        self.store = default_store(worker, self.store_root)
        self.store.mkdir(parents=True, exist_ok=True)
        self._boot_id = boot_id()
        if swept := sweep(self.store):  # shared-memory handoffs a previous process left
            log.info("gswarm: removed %d stale shared-memory copy files", swept)
        self._gpus = NvmlProbe()
        if not self._gpus.available:
            self._torch_gpus = torch_gpus()
        host_cpu()  # primes psutil's CPU counter so the first heartbeat has a real reading
        worker.metrics[METRIC] = lambda w: self.report()
        settle()  # see core.heap: the worker's and torch's objects out of full collections

    def teardown(self, worker: Worker) -> None:
        worker.metrics.pop(METRIC, None)
        release()  # the worker's frozen objects go with it (in-process workers: the test's)

    @classmethod
    def of(cls, worker: Worker) -> NodeAgent:
        return worker.plugins[PLUGIN_NAME]  # type: ignore[return-value]

    def report(self) -> dict[str, Any]:
        """What this node has now: devices with total/used/available bytes, CPU, GPUs."""
        assert self.worker is not None and self.store is not None
        gpus = nvml_gpus(self._gpus) if self._gpus and self._gpus.available else self._torch_gpus
        devices: dict[str, dict[str, int | None]] = {
            "disk": disk_usage(str(self.store)),
            "dram": dram_usage(self.worker.memory_manager.memory_limit, process_rss()),
        }
        for gpu in gpus:
            devices[gpu["device"]] = gpu_usage(gpu)
        return {
            "hostname": socket.gethostname(),
            "boot_id": self._boot_id,
            "pid": os.getpid(),
            "store": str(self.store),
            "cpu": host_cpu(),
            "devices": devices,
            "gpus": gpus,
            "vgpus": [],
        }


def default_store(worker: Worker, store_root: str | None) -> Path:
    """`<store_root>/<node>`; without a root, beside the worker's scratch folder on its host (not
    inside it: Dask deletes that folder when the worker closes)."""
    root = Path(store_root) if store_root else Path(worker.local_directory).parent / "gswarm-nodes"
    return root / str(worker.name)
