"""The services' `WeightSource` (`storage/weights.py`) over the model store: a model resolved
(registered first when a source is given), a ready copy ensured on a device (a copy task when
there is none), and the worker-side loader of that copy."""

from __future__ import annotations

import contextlib
import functools

from ...core.db import loads
from ...core.errors import Conflict, InvalidRequest, ResourceUnavailable
from ...core.models_api import LocationCreate, ModelCreate
from .modelstore import ModelStore, raise_unless_completed
from .registration import ModelSources
from .weight_ops import load_weights
from .weights import Loader, ModelSpec


class StoreWeights:
    def __init__(self, store: ModelStore, sources: ModelSources) -> None:
        self.store = store
        self.sources = sources  # registers a model named with its source on first use

    async def resolve(
        self, name: str, source_url: str | None = None, model_type: str | None = None
    ) -> ModelSpec:
        """The registered model `name` (registered from `source_url` first if unknown; a download
        is awaited)."""
        registry = self.store.registry
        if not registry.exists(name):
            if source_url is None:
                registry.row(name)  # ModelNotFound
            with contextlib.suppress(Conflict):  # registered meanwhile by another caller
                await self.sources.register(ModelCreate(model_name=name, source_url=source_url,
                                                      model_type=model_type))
        row = registry.row(name)
        if row["task_id"] and row["checksum"] is None:  # still downloading its first copy
            task = await self.store.executor.wait(row["task_id"])
            raise_unless_completed(task)
            row = registry.row(name)
        meta = loads(row["metadata"]) or {}
        if model_type is not None and row["model_type"] != model_type:
            raise InvalidRequest(
                f"model_type: {name} is a {row['model_type']} model, not {model_type!r}",
                {"field": "model_type", "expected": row["model_type"], "got": model_type},
            )
        if not meta.get("arch"):
            raise ResourceUnavailable(f"model {name} has no ready copy", {"model_name": name})
        return ModelSpec(name, meta["arch"], dict(meta.get("config") or {}), row["source_url"],
                         row["version"])

    async def ensure_copy(self, model: ModelSpec | str, node: str, device: str,
                          *, priority: str = "high", evict: bool = True) -> None:
        """A ready copy of the model on `node:device`: at once if there is one, after the copy
        task already making it if that one completes, else after a copy task of its own from the
        best copy (whose failure is raised here)."""
        name = model if isinstance(model, str) else model.name
        store = self.store
        copies = store.registry.copies
        waited: set[str] = set()
        while True:
            store.reconcile()
            loc = copies.get(name, node, device)
            if loc is not None and loc["status"] == "ready":
                copies.touch(name, node, device)
                return
            if loc is None or loc["status"] != "copying" or loc["task_id"] in waited:
                break
            # Another request's copy: awaited once. If it does not complete (cancelled, or a
            # download whose bytes are not the model's), this request makes its own.
            waited.add(loc["task_id"])
            await store.executor.wait(loc["task_id"])
        if loc is not None:  # lost, or left by a copy that did not complete: forget it
            copies.remove(name, node, device)
        task = await store.add_location(
            name, LocationCreate(device=f"{node}:{device}", priority=priority, evict=evict)
        )
        raise_unless_completed(await store.executor.wait(task.task_id))

    def loader(self, model: ModelSpec, node: str, device: str) -> Loader:
        """The worker-side function that answers (arch, config, params) on `node`."""
        self.store.registry.copies.touch(model.name, node, device)
        return functools.partial(load_weights, model.name, device)

    def services_changed(self, model_name: str, services: dict[str, str]) -> None:
        self.store.services_changed(model_name, services)
