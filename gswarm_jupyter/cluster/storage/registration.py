"""Models from their sources: registering a model and downloading a copy of it.

A model's entry is recorded with its first copy, in one transaction (an http(s) source: with its
download task), so a registration cut short leaves no entry without bytes. A name is held while
its registration runs, so two registrations of one name never both proceed. An http(s) source
the fetch policy denies is refused before anything is made; the node checks every hop again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ...backends import checkpoints
from ...core.db import loads
from ...core.errors import Conflict, GswarmError, InvalidRequest
from ...core.fetchpolicy import FetchPolicy
from ...core.models_api import DownloadRequest, ModelCreate
from ...core.names import DeviceRef, check_model_name
from ...core.nodes import Node
from ...core.redact import has_redacted_userinfo, redact_url
from ...core.sources import Source, parse_source
from ...core.tasks import Task
from ..runtime.executor import Job
from ..runtime.signals import TaskSignal
from . import hfdir
from .httpfetch import Room, precheck
from .modelstore import DOWNLOAD, ModelStore, device_ref
from .weight_ops import acquire_weights


class ModelSources:
    """Registrations and downloads of the models in `store` (runs its `model_download` tasks)."""

    def __init__(self, store: ModelStore, model_roots: list[str],
                 fetch_policy: FetchPolicy | None = None) -> None:
        self.store = store
        self.model_roots = list(model_roots)
        self.fetch_policy = fetch_policy or FetchPolicy()  # where http(s) sources may be fetched
        self._registering: set[str] = set()  # names held by registrations not recorded yet
        store.executor.register(DOWNLOAD, self._run_download)

    # -- registering --------------------------------------------------------------------------

    async def register(self, req: ModelCreate) -> dict[str, Any]:
        """A new model. builtin:// and file:// answer with their first copy ready; http(s)://
        with the model `downloading` and the download task's id in `task_id`. The name is held
        while the registration runs."""
        name = check_model_name(req.model_name)
        if self.store.registry.exists(name) or name in self._registering:
            raise Conflict(f"model {name!r} already exists", {"model_name": name})
        self._registering.add(name)
        try:
            return await self._register(name, req)
        finally:
            self._registering.discard(name)

    async def _register(self, name: str, req: ModelCreate) -> dict[str, Any]:
        store = self.store
        source = parse_source(req.source_url, self.model_roots)
        await self._precheck(source)
        arch, estimate = await asyncio.to_thread(_expected, source)  # may walk a folder
        if req.model_type is not None and arch is not None and req.model_type != arch:
            raise InvalidRequest(
                f"model_type {req.model_type!r} does not match the source's architecture {arch!r}",
                {"field": "model_type", "expected": arch},
            )
        target = store.target(req.download_to, "download_to")
        node = store.runtime.nodes.online_node(target.node)
        if estimate is not None:
            await store.make_room(name, target, estimate, req.evict)
        metadata = dict(req.metadata)
        entry = {"source_url": redact_url(req.source_url), "model_type": req.model_type or arch,
                 "metadata": metadata}
        if source.kind == "http":
            store.registry.create(name, **entry)
            return self._start_download(name, _with_type(source, req), target, req.checksum,
                                        req.priority, req.dependencies, registered=True)
        stored = await self._acquire_now(name, 1, target, node, _with_type(source, req),
                                         req.checksum)
        # The entry comes with its first copy, in one transaction: a registration cut short
        # (a failure, a killed server) never leaves an entry without bytes.
        try:
            with store.registry.db.transaction():
                store.registry.create(name, **entry)
                store.measured(name, stored, metadata)
                store.copies.put(name, target.node, target.device, "ready",
                                 size=stored["size"], worker=stored["worker"])
        except BaseException:
            await store.engine.drop_quietly(name, target.node, target.device)
            raise
        store.emit(name, "registered", status="ready")
        store.emit(name, "location_added", device=str(target), status="ready")
        return store.record(name)

    async def _acquire_now(self, name: str, version: int, target: DeviceRef, node: Node,
                           source: dict[str, Any], checksum: str | None) -> dict[str, Any]:
        try:
            return await self.store.runtime.run_on(
                node.name, acquire_weights, name, version, target.device, source,
                TaskSignal(f"register-{name}"), checksum,
            )
        except GswarmError as exc:
            if exc.details.get("field") == "checksum":
                # The caller's checksum does not match the source's bytes: its request is wrong.
                raise InvalidRequest(exc.message, exc.details) from None
            raise

    # -- downloading --------------------------------------------------------------------------

    async def download(self, name: str, req: DownloadRequest) -> Task:
        """A new copy of `name` from its source (or `req.source_url`), as a task."""
        store = self.store
        row = store.registry.row(name)
        if req.source_url is None and has_redacted_userinfo(row["source_url"]):
            raise InvalidRequest(
                f"the credentials of {name}'s source_url were not kept: give source_url again",
                {"field": "source_url"},
            )
        source = parse_source(req.source_url or row["source_url"], self.model_roots)
        await self._precheck(source)
        target = store.target(req.target_device, "target_device")
        store.runtime.nodes.online_node(target.node)
        store.free_target(name, target)
        if row["size"] is not None:
            await store.make_room(name, target, row["size"], req.evict)
        checksum = req.checksum or (row["checksum"] if req.verify_checksum else None)
        meta = loads(row["metadata"]) or {}
        typed = {**source.params(), "model_type": row["model_type"],
                 "num_labels": (meta.get("config") or {}).get("num_labels")}
        self._start_download(name, typed, target, checksum, req.priority, req.dependencies)
        return store.executor.queue.get(store.registry.row(name)["task_id"])

    def _start_download(
        self, name: str, source: dict[str, Any], target: DeviceRef, checksum: str | None,
        priority: str, dependencies: list[str], registered: bool = False,
    ) -> dict[str, Any]:
        store = self.store
        row = store.registry.row(name)
        try:
            task = store.executor.submit(
                DOWNLOAD,
                name,
                priority=priority,
                dependencies=dependencies,
                resources={"devices": [str(target)], "models": [name]},
                # The source as given (credentials included) rides in the payload, dropped when
                # the task finishes; the task's stored params show it redacted.
                params={"model_name": name, "source": _redacted(source),
                        "target": str(target), "checksum": checksum, "version": row["version"]},
                payload={"source": source},
                locks=[f"model:{name}"],
            )
        except BaseException:
            if registered:
                store.registry.delete(name)
            raise
        store.registry.update(name, task_id=task.task_id, error=task.error)
        if registered:
            store.emit(name, "registered", status="downloading", task_id=task.task_id)
        if not task.finished:
            store.copies.put(name, target.node, target.device, "copying",
                             size=row["size"], task_id=task.task_id)
            store.emit(name, "location_added", device=str(target), status="copying",
                       task_id=task.task_id)
        return store.record(name)

    async def _run_download(self, job: Job) -> dict[str, Any]:
        store = self.store
        p = job.params
        name = p["model_name"]
        target = device_ref(p["target"])
        store.registry.row(name)
        stored = await store.engine.run_write(
            job, name, target, acquire_weights, name, p["version"], target.device,
            job.payload.get("source", p["source"]),
            job.signal, p.get("checksum"), self._download_room(name, target), self.fetch_policy)
        if stored is None:
            return {"model_name": name, "deleted": True}
        row = store.registry.row(name)
        if row["checksum"] is not None and row["checksum"] != stored["checksum"] and any(
            loc["status"] == "ready" for loc in store.copies.of(name)
        ):
            await store.engine.forget_target(name, target, job, drop=True)
            raise Conflict(
                f"the download of {name} differs from its registered copies "
                f"(sha256 {stored['checksum']} != {row['checksum']})",
                {"model_name": name, "expected": row["checksum"], "got": stored["checksum"]},
            )
        store.measured(name, stored, {k: v for k, v in (loads(row["metadata"]) or {}).items()})
        store.copies.put(name, target.node, target.device, "ready", size=stored["size"],
                         worker=stored["worker"], task_id=job.task.task_id)
        store.emit(name, "location_added", device=str(target), status="ready")
        store.emit(name, "updated", status="ready", checksum=stored["checksum"])
        return {"model_name": name, "device": str(target), "size": stored["size"],
                "checksum": stored["checksum"], "format": stored["format"]}

    # -- inside -------------------------------------------------------------------------------

    async def _precheck(self, source: Source) -> None:
        """An http(s) source the fetch policy denies is refused now, before anything is made."""
        if source.kind == "http":
            await asyncio.to_thread(precheck, source.url, self.fetch_policy)

    def _download_room(self, name: str, target: DeviceRef) -> Room:
        """What a download to `target` may take: the free bytes the node reports, within the
        model capacity left there."""
        return Room(self.store.engine.room(name, target, self.store.capacity_of(target)),
                    str(target))


def _expected(source: Source) -> tuple[str | None, int | None]:
    """The architecture and the byte size a source will have, where known before making it
    (a folder: the files its packed copy keeps)."""
    if source.kind == "builtin":
        return checkpoints.builtin_expected(source.url)
    if source.kind in ("file", "pkg") and source.path is not None:
        path = Path(source.path)
        base = None if source.base is None else Path(source.base)
        return None, hfdir.size_of(path, base) if path.is_dir() else path.stat().st_size
    return None, None


def _with_type(source: Source, req: ModelCreate) -> dict[str, Any]:
    """A source's params with what a Hugging Face directory from it is served as: the request's
    model_type (None: from its config.json) and `metadata.num_labels` (a classifier's classes)."""
    num_labels = req.metadata.get("num_labels")
    return {**source.params(), "model_type": req.model_type,
            "num_labels": num_labels if isinstance(num_labels, int) else None}


def _redacted(params: dict[str, Any]) -> dict[str, Any]:
    """A source's params as stored with its task: the url without its userinfo."""
    url = params.get("url")
    return {**params, "url": redact_url(url)} if isinstance(url, str) else params
