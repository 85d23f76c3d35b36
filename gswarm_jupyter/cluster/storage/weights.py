"""Where services get their weights: the `WeightSource` interface services depend on. The model
store (`modelstore.ModelStore`) implements it: registry, copies on devices, copy tasks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ...backends.weights import param_bytes

Weights = tuple[str, dict[str, Any], dict[str, Any]]  # (arch, config, params)
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
        """The architecture's name for built-ins; what a Hugging Face model is served as."""
        return str(self.config.get("model_type") or self.arch)

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
