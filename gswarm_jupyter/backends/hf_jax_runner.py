"""The JAX runner of a Hugging Face model: `gswarm_kernels.hf.jax_model` on a chosen JAX device."""

from __future__ import annotations

import jax
import numpy as np
from gswarm_kernels.hf.jax_model import JaxModel
from gswarm_kernels.hf.model_dir import HFModel

from ..core.errors import ResourceUnavailable
from .base import GenerateOptions
from .devices import framework_device
from .hf_runner import HFRunner
from .jax_runner import _jax_device


class HFJaxRunner(HFRunner):
    framework = "jax"

    def __init__(self, model: HFModel, device: str) -> None:
        target = framework_device(device)
        self.jax_device = _jax_device(target)
        self.model: JaxModel | None = JaxModel(model.spec, model.params, self.jax_device)
        super().__init__(model, target)

    def encode(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with jax.default_device(self.jax_device):
            return self._model().forward(ids, mask)

    def generate(self, prompts: list[np.ndarray], options: GenerateOptions) -> list[list[int]]:
        with jax.default_device(self.jax_device):
            return self._model().generate(
                prompts,
                max_tokens=options.max_tokens,
                temperature=options.temperature,
                top_p=options.top_p,
                seed=options.seed,
            )

    def memory_bytes(self) -> int:
        return 0 if self.model is None else self.model.memory_bytes()

    def close(self) -> None:
        model, self.model = self.model, None
        if model is not None:
            model.close()

    def _model(self) -> JaxModel:
        if self.model is None:
            raise ResourceUnavailable("the model was unloaded")
        return self.model
