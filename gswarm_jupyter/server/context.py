"""What every handler shares: the cluster runtime, the access gate (keys, rate limits, audit),
counters and config."""

from __future__ import annotations

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
from ..cluster.tenancy.vgpus import VirtualGpus
from ..cluster.training.trainer import Trainer
from ..core.access import Access
from ..core.db import Database
from ..core.ratelimit import RateLimiter
from ..profiler.grpc_server import GrpcServer
from ..profiler.service import Profiler


@dataclass
class GswarmContext:
    runtime: ClusterRuntime
    limiter: RateLimiter
    db: Database
    access: Access  # keys, their scopes and quotas, the rate limiter and the audit log
    max_body_bytes: int = 64 * 2**20  # the largest request body a handler reads
    version: str = __version__
    started_at: float = field(default_factory=time.time)
    requests: Counter[int] = field(default_factory=Counter)  # by HTTP status
    config: dict[str, Any] = field(default_factory=dict)
    profiler: Profiler | None = None
    profiler_grpc: GrpcServer | None = None  # the profiler's gRPC service, for external agents
    tasks: TaskExecutor | None = None  # the task queue and its executor
    data: DataPool | None = None
    uploads: ChunkUploads | None = None  # new chunks: uploads and URL downloads
    models: ModelStore | None = None  # the model registry and placement
    model_sources: ModelSources | None = None  # registrations and downloads of models
    services: Serving | None = None  # services and the compute plane over them
    training: Trainer | None = None  # training and optimisation of registered models
    vgpus: VirtualGpus | None = None  # virtual GPUs: their book (durable) and their lifecycle

    @property
    def uptime(self) -> float:
        return round(time.time() - self.started_at, 3)

    async def start(self) -> None:
        """Start every component; each feature adds its own here, after the runtime."""
        self.db.migrate()
        self.access.keys.load()
        if self.vgpus is not None:  # before the runtime: nodes show their vGPUs at once
            self.vgpus.book.load()
        await self.runtime.start()
        if self.tasks is not None:
            await self.tasks.start()  # restores tasks; dispatches once the cluster is ready
        if self.data is not None:
            self.data.start()
        if self.models is not None:
            self.models.start()
        if self.profiler is not None:
            await self.profiler.start()
        if self.profiler_grpc is not None:
            await self.profiler_grpc.serve()
        if self.services is not None:
            await self.services.start()

    async def stop(self) -> None:
        """Stop in the reverse order of `start`."""
        if self.services is not None:
            await self.services.stop()
        if self.profiler_grpc is not None:
            await self.profiler_grpc.stop()
        if self.profiler is not None:
            await self.profiler.stop()
        if self.tasks is not None:
            await self.tasks.stop()
        await self.runtime.stop()
        self.db.close()
