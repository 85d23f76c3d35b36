"""What every handler shares: the cluster runtime, the access gate (keys, rate limits, audit),
every feature's component, counters and config. Every component is built by the app
(server/app.py) and handed in here; none is optional and none is set afterwards."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .._version import __version__
from ..cluster.runtime.cluster import ClusterRuntime
from ..cluster.runtime.executor import TaskExecutor
from ..cluster.serving.component import Serving
from ..cluster.storage.datapool import DataPool
from ..cluster.storage.modelstore import ModelStore
from ..cluster.storage.registration import ModelSources
from ..cluster.storage.uploads import ChunkUploads
from ..cluster.tenancy.allocations import Allocations
from ..cluster.tenancy.vgpus import VirtualGpus
from ..cluster.training.trainer import Trainer
from ..core.access import Access
from ..core.db import Database
from ..core.ratelimit import RateLimiter
from ..profiler.grpc_server import GrpcServer
from ..profiler.service import Profiler


@dataclass(frozen=True)
class GswarmContext:
    runtime: ClusterRuntime
    limiter: RateLimiter
    db: Database
    access: Access  # keys, their scopes and quotas, the rate limiter and the audit log
    profiler: Profiler
    profiler_grpc: GrpcServer  # the profiler's gRPC service, for external agents
    tasks: TaskExecutor  # the task queue and its executor
    data: DataPool
    uploads: ChunkUploads  # new chunks: uploads and URL downloads
    models: ModelStore  # the model registry and placement
    model_sources: ModelSources  # registrations and downloads of models
    services: Serving  # services and the compute plane over them
    training: Trainer  # training and optimisation of registered models
    allocations: Allocations  # resource reservations on devices, and their expiry
    vgpus: VirtualGpus  # virtual GPUs: their book (durable) and their lifecycle
    max_body_bytes: int = 64 * 2**20  # the largest request body a handler reads
    version: str = __version__
    started_at: float = field(default_factory=time.time)
    requests: Counter[int] = field(default_factory=Counter)  # by HTTP status
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def uptime(self) -> float:
        return round(time.time() - self.started_at, 3)

    async def start(self) -> None:
        """Start every component, the runtime first."""
        self.db.migrate()
        self.access.keys.load()
        self.vgpus.book.load()  # before the runtime: nodes show their vGPUs from the first report
        self.vgpus.start()  # and every node that comes online learns which device they are
        await self.runtime.start()
        self.allocations.start()  # restores the live ones; expires them on the loop
        await self.tasks.start()  # restores tasks; dispatches once the cluster is ready
        self.data.start()
        self.models.start()
        await self.profiler.start()
        await self.profiler_grpc.serve()
        await self.services.start()

    async def stop(self) -> None:
        """Stop in the reverse order of `start`."""
        await self.services.stop()
        await self.profiler_grpc.stop()
        await self.profiler.stop()
        await self.tasks.stop()
        await self.allocations.stop()
        await self.runtime.stop()
        # The audit's noted rows written and its thread stopped before the database closes.
        await asyncio.to_thread(self.access.audit.close)
        self.db.close()
