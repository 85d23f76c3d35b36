"""`GswarmApp`: the Jupyter server extension, its configuration, and its lifecycle."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
from pathlib import Path

import psutil
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Bool, Dict, Float, Int, List, Unicode

from .._version import __version__
from ..cluster.runtime.cluster import ClusterConfig, ClusterRuntime
from ..cluster.runtime.executor import TaskExecutor
from ..cluster.runtime.security import SchedulerTls
from ..cluster.serving.component import Serving
from ..cluster.serving.vgpu_occupants import VgpuOccupants
from ..cluster.storage.datapool import DataPool
from ..cluster.storage.model_users import ModelUsers
from ..cluster.storage.modelstore import ModelStore
from ..cluster.storage.registration import ModelSources
from ..cluster.storage.uploads import ChunkUploads
from ..cluster.storage.versions import ModelVersions
from ..cluster.storage.weight_source import StoreWeights
from ..cluster.tenancy.allocations import Allocations
from ..cluster.tenancy.vgpus import TablePlacements, VgpuBook, VirtualGpus, WorkerBindings
from ..cluster.training.trainer import Trainer
from ..core.access import Access
from ..core.audit import AuditLog
from ..core.chunks import ChunkRegistry
from ..core.compute_store import RequestMap
from ..core.db import Database
from ..core.fetchpolicy import FetchPolicy
from ..core.heap import release, settle
from ..core.key_usage import KeyUsage
from ..core.keys import KeyStore
from ..core.modelregistry import ModelRegistry
from ..core.ratelimit import RateLimiter
from ..core.retention import Retention
from ..core.tasks import TaskQueue, limit_per_thread
from ..core.taskstore import TaskStore
from ..profiler.grpc_server import GrpcServer
from ..profiler.service import Profiler
from ..profiler.transport import GrpcTls
from . import fastjson
from .connection import write_connection_file
from .context import GswarmContext
from .dispatch import tornado_rules
from .handlers import tornado_handlers
from .interrupt import stop_on_interrupt
from .statedir import DataDirInUse, StateLock, default_data_dir
from .unix_http import serve_on_unix_socket


class GswarmApp(ExtensionApp):
    name = "gswarm_jupyter"
    description = "A GPU swarm driven from a notebook"
    version = __version__
    load_other_extensions = True

    scheduler_address = Unicode(
        "", config=True, help="Address of an existing Dask scheduler; empty starts a LocalCluster."
    )
    scheduler_tls_ca_file = Unicode(
        "", config=True,
        help="PEM file of the CA that signed the external scheduler's certificate (TLS).",
    )
    scheduler_tls_cert = Unicode(
        "", config=True, help="PEM certificate the server presents to the external scheduler."
    )
    scheduler_tls_key = Unicode(
        "", config=True, help="PEM key of scheduler_tls_cert (empty: the key is in that file)."
    )
    local_nodes = Int(2, config=True, help="Workers (node1..nodeN) of the embedded LocalCluster.")
    local_processes = Bool(
        True, config=True, help="Run embedded workers as processes (False: threads, for tests)."
    )
    worker_memory_limit = Unicode(
        "auto",
        config=True,
        help="Memory limit of each embedded worker ('auto' shares the host's memory, or '4GiB').",
    )
    data_dir = Unicode(
        "", config=True,
        help="Where state and node stores live; one server's alone (default: a folder of the "
        "server's root_dir, <jupyter data dir>/gswarm/<root name>-<hash>).",
    )
    model_roots = List(
        Unicode(),
        config=True,
        help="Folders file:// sources may come from (default: the server's root_dir).",
    )
    grpc_port = Int(8090, config=True, help="Port of the profiler's gRPC service.")
    grpc_insecure = Bool(
        False, config=True,
        help="Serve gRPC in plaintext off loopback when Jupyter has no certfile (the token then "
        "crosses the network in clear); otherwise such a gRPC service is not started.",
    )
    rate_limit_per_minute = Int(1000, config=True, help="Requests per minute per identity; 0: off.")
    rate_limit_burst = Int(100, config=True, help="Requests per second per identity; 0: off.")
    rate_limit_owner = Bool(
        False, config=True,
        help="Rate limit the server owner's Jupyter token or login too (API keys and "
        "unauthenticated callers always are).",
    )
    audit_reads = Bool(
        False, config=True,
        help="Write reads (GET, WebSocket subscriptions) to the audit log too; writes and "
        "denials always are.",
    )
    max_concurrent_tasks = Int(
        0, config=True,
        help="Queued tasks that may run at once; 0 (the default): 8 for each worker thread of "
        "the online nodes, at least 4 (GET /queue reports the limit in force).",
    )
    task_history_days = Float(
        7.0, config=True, help="Days a finished task is kept (in memory and the database)."
    )
    task_history_max = Int(
        10_000, config=True, help="Finished tasks kept at most; the oldest go first."
    )
    task_history_sweep_seconds = Float(
        600.0, config=True, help="Seconds between two sweeps of old finished tasks."
    )
    max_body_bytes = Int(
        64 * 2**20, config=True,
        help="Largest request body a gswarm route reads (413 PAYLOAD_TOO_LARGE past it); larger "
        "data goes to the data pool as a file:// or http(s) url.",
    )
    max_chunk_bytes = Int(
        2**30, config=True,
        help="Largest data-pool chunk POST /data stores (413 PAYLOAD_TOO_LARGE past it).",
    )
    fetch_allow = List(
        Unicode(),
        config=True,
        help="Where http(s) chunk and model sources may be fetched although the default refuses: "
        "CIDR networks ('127.0.0.0/8'), addresses or exact host names. Metadata addresses stay "
        "refused.",
    )
    fetch_deny = List(
        Unicode(),
        config=True,
        help="Where http(s) sources may not be fetched (after fetch_allow): networks, addresses "
        "or host names; '0.0.0.0/0', '::/0' or '*' also refuse every host name not allowed.",
    )
    model_capacity = Dict(
        value_trait=Int(), config=True,
        help="Bytes model copies may take per device, by bare ('dram') or qualified "
        "('node1:gpu0') device; devices not named are bounded by what the node reports free.",
    )

    def resolved_data_dir(self) -> Path:
        if self.data_dir:
            return Path(self.data_dir).expanduser()
        return default_data_dir(self.serverapp.root_dir)

    def resolved_model_roots(self) -> list[str]:
        return list(self.model_roots) or [str(self.serverapp.root_dir)]

    def _memory_limit(self) -> str | int:
        if self.worker_memory_limit == "auto" and not self.scheduler_address:
            return psutil.virtual_memory().total // max(1, self.local_nodes)
        return self.worker_memory_limit

    def initialize_settings(self) -> None:
        stop_on_interrupt(self.serverapp)
        data_dir = self.resolved_data_dir()
        self._state_lock = self._lock(data_dir)
        self._stopped: asyncio.Future[None] | None = None
        fetch_policy = FetchPolicy(self.fetch_allow, self.fetch_deny)
        data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(data_dir / "gswarm.sqlite3")
        # Virtual GPUs are devices of their nodes: the runtime shows what the book carved.
        vgpu_book = VgpuBook(db, TablePlacements(ModelRegistry(db), ChunkRegistry(db)))
        runtime = ClusterRuntime(
            ClusterConfig(
                scheduler_address=self.scheduler_address,
                local_nodes=self.local_nodes,
                worker_memory_limit=self._memory_limit(),
                local_processes=self.local_processes,
                data_dir=data_dir,
                dashboard_prefix=url_path_join(self.serverapp.base_url, "gswarm/dask/"),
                scheduler_tls=SchedulerTls(
                    self.scheduler_tls_ca_file, self.scheduler_tls_cert, self.scheduler_tls_key
                ),
            ),
            serve_http=serve_on_unix_socket,
            virtual=vgpu_book.of_node,
        )
        limiter = RateLimiter(self.rate_limit_per_minute, self.rate_limit_burst)
        task_store = TaskStore(db)
        queue = TaskQueue(
            self.max_concurrent_tasks if self.max_concurrent_tasks > 0
            else limit_per_thread(runtime.nodes.threads),
            journal=task_store.record_new,
        )
        usage = KeyUsage(db, queue, ChunkRegistry(db), ModelRegistry(db))
        # Reservations: booked in their own ledger, withheld where copies and chunks are placed
        # (the copy engines' room check) and counted in a key's bytes (the access gate).
        allocations = Allocations(db, runtime.nodes, usage)
        access = Access(
            KeyStore(db), usage, AuditLog(db), limiter, audit_reads=self.audit_reads,
            limit_owner=self.rate_limit_owner, reserved=allocations,
        )
        model_roots = self.resolved_model_roots()
        profiler = Profiler(
            db, data_dir / "profiler", client=lambda: runtime.client,
            node_names=runtime.nodes.names,
        )
        profiler_grpc = GrpcServer(
            profiler,
            _grpc_host(self.serverapp.ip),
            self.grpc_port,
            token=lambda: str(self.serverapp.identity_provider.token or ""),
            tls=GrpcTls(
                self.serverapp.certfile, self.serverapp.keyfile, insecure=self.grpc_insecure
            ),
            access=access,
        )
        tasks = TaskExecutor(
            queue, runtime, task_store,
            Retention(self.task_history_days, self.task_history_max,
                      self.task_history_sweep_seconds),
        )
        data = DataPool(ChunkRegistry(db), runtime, tasks, max_chunk_bytes=self.max_chunk_bytes,
                        reservations=allocations)
        uploads = ChunkUploads(data, model_roots, fetch_policy=fetch_policy)
        # The serving side joins `users` as it is built: copies its replicas hold stay, a deleted
        # model's services stop, a new version written by training is reloaded between batches.
        users = ModelUsers()
        models = ModelStore(
            ModelRegistry(db), runtime, tasks, users=users, capacity=dict(self.model_capacity),
            reservations=allocations,
        )
        model_sources = ModelSources(models, model_roots, fetch_policy=fetch_policy)
        training = Trainer(
            models, ModelVersions(models, users), tasks, runtime, RequestMap(db), data,
            encode=fastjson.dumps,
        )
        services = Serving(
            runtime,
            StoreWeights(models, model_sources),  # the services' WeightSource
            db,
            tasks,
            compute_url=f"{self.serverapp.base_url.rstrip('/')}/gswarm/compute/v1/inference",
            users=users,
            quantize=training.quantized,
            reservations=allocations,
        )
        vgpus = VirtualGpus(vgpu_book, runtime.nodes,
                            VgpuOccupants(services.services, models, data),
                            WorkerBindings(runtime))
        self.context = GswarmContext(
            runtime=runtime,
            limiter=limiter,
            db=db,
            allocations=allocations,
            access=access,
            profiler=profiler,
            profiler_grpc=profiler_grpc,
            tasks=tasks,
            data=data,
            uploads=uploads,
            models=models,
            model_sources=model_sources,
            services=services,
            training=training,
            vgpus=vgpus,
            max_body_bytes=self.max_body_bytes,
            config={
                "data_dir": str(data_dir),
                "model_roots": model_roots,
                "grpc_port": self.grpc_port,
            },
        )
        self.settings.update({"gswarm": self.context})
        self._connection_file: Path | None = None

    def initialize_handlers(self) -> None:
        # Rules, not tuples, so a bodiless request reaches a handler that does not stream
        # (`dispatch`); one group, in the table's order.
        web_app = self.serverapp.web_app
        web_app.add_handlers(".*$", tornado_rules(tornado_handlers(), web_app.settings["base_url"]))

    async def _start_jupyter_server_extension(self, serverapp) -> None:  # type: ignore[no-untyped-def]
        await self.context.start()
        self._connection_file = write_connection_file(
            serverapp.runtime_dir, serverapp.connection_url, serverapp.identity_provider.token
        )
        # A second Ctrl-C ends Jupyter without its cleanup; the file must not outlive the server.
        atexit.register(self._remove_connection_file)
        settle()  # see core.heap: start-up's objects out of the collector's full passes
        self.log.info("gswarm: extension started; data in %s", self.context.config["data_dir"])

    async def stop_extension(self) -> None:
        # A second Ctrl-C or SIGTERM asks Jupyter to stop again: it waits for the same stop.
        if self._stopped is None:
            self._stopped = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopped)

    async def _stop(self) -> None:
        try:
            await self.context.stop()  # services, then tasks, then the cluster and its workers
        finally:
            release()  # what start-up froze is garbage now (a test process starts servers again)
            self._remove_connection_file()
            self._state_lock.release()
        self.log.info("gswarm: extension stopped")

    def _lock(self, data_dir: Path) -> StateLock:
        """This server's hold on its data folder, for its whole life; a second server stops here."""
        try:
            return StateLock.acquire(data_dir, {"root_dir": str(self.serverapp.root_dir)})
        except DataDirInUse as exc:
            self.log.critical("%s", exc)
            raise SystemExit(1) from None

    def _remove_connection_file(self) -> None:
        if self._connection_file is not None:
            with contextlib.suppress(FileNotFoundError):
                self._connection_file.unlink()


def _grpc_host(ip: str) -> str:
    """The gRPC service listens where Jupyter does (every interface when Jupyter does)."""
    return "[::]" if ip in ("", "*", "0.0.0.0", "::") else ip
