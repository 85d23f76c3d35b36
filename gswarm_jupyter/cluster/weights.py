"""Where services get their weights: the `WeightSource` interface, and `LocalWeights`, which serves
`builtin://` and checkpoint-file sources by making the weights on the node itself.

The model store (registry, copies on devices, copy tasks) implements the same interface; services
depend on this interface only.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..backends.sources import Weights, describe_source, load_source, param_bytes
from ..core.errors import InvalidRequest, ModelNotFound
from ..core.names import check_model_name

Loader = Callable[[], Weights]  # picklable; runs on the worker that will serve


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    arch: str
    config: dict[str, Any]
    source_url: str
    version: int = 1

    @property
    def model_type(self) -> str:
        return self.arch

    @property
    def size(self) -> int:
        """float32 bytes of a loaded copy."""
        return param_bytes(self.arch, self.config)


class WeightSource(Protocol):
    async def resolve(
        self, name: str, source_url: str | None = None, model_type: str | None = None
    ) -> ModelSpec:
        """The model `name`, registered from `source_url` first if unknown (`ModelNotFound`
        when unknown and no source is given)."""
        ...

    async def ensure_copy(self, model: ModelSpec, node: str, device: str) -> None:
        """Make sure `node` can load `model` onto `device` (a copy task when it has no copy)."""
        ...

    def loader(self, model: ModelSpec, node: str, device: str) -> Loader:
        """The worker-side function that answers (arch, config, params) on `node`."""
        ...

    def services_changed(self, model_name: str, services: dict[str, str]) -> None:
        """The model's running services changed (node -> url), for the registry to show."""
        ...


class LocalWeights:
    """A `WeightSource` without a model store: sources the nodes make themselves."""

    def __init__(self, model_roots: list[str]) -> None:
        self.model_roots = model_roots
        self.models: dict[str, ModelSpec] = {}
        self.services: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    async def resolve(
        self, name: str, source_url: str | None = None, model_type: str | None = None
    ) -> ModelSpec:
        check_model_name(name, "model_id")
        known = self.models.get(name)
        if known is None:
            if source_url is None:
                raise ModelNotFound(f"unknown model {name!r}; give model_path to register it",
                                    {"model_id": name})
            arch, config = describe_source(source_url, self.model_roots)
            known = ModelSpec(name, arch, config, source_url)
            with self._lock:
                known = self.models.setdefault(name, known)
        if model_type is not None and model_type != known.model_type:
            raise InvalidRequest(
                f"model_type: {name} is a {known.model_type} model, not {model_type!r}",
                {"field": "model_type", "expected": known.model_type, "got": model_type},
            )
        return known

    async def ensure_copy(self, model: ModelSpec, node: str, device: str) -> None:
        return None  # the node makes the weights from the source itself

    def loader(self, model: ModelSpec, node: str, device: str) -> Loader:
        return functools.partial(load_source, model.source_url)

    def services_changed(self, model_name: str, services: dict[str, str]) -> None:
        self.services[model_name] = dict(services)
