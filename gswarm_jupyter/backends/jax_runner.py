"""The JAX runner: the `gswarm_kernels` JAX twins, parameters placed on the chosen JAX device.

Row counts are padded to powers of two so a stream of batches of varying size compiles a handful
of shapes, not one per size.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from gswarm_kernels import jax_infer
from gswarm_kernels.jax_models import device_params

from ..core.errors import ResourceUnavailable
from .base import GenerateOptions, Runner
from .devices import framework_device


class JaxRunner(Runner):
    framework = "jax"

    def __init__(self, arch: str, config: dict[str, Any], params: dict[str, Any], device: str) -> None:
        from gswarm_kernels.builtin import normalize_config

        target = framework_device(device)
        self.jax_device = _jax_device(target)
        config = normalize_config(arch, config)
        with jax.default_device(self.jax_device):
            self.params: dict[str, jax.Array] | None = device_params(arch, config, params)
        super().__init__(arch, config, target)

    def predict(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        padded = max(1, 1 << (n - 1).bit_length())
        if padded != n:
            x = np.concatenate([x, np.zeros((padded - n, x.shape[1]), dtype=x.dtype)])
        with jax.default_device(self.jax_device):
            return jax_infer.predict(self.arch, self.config, self._params(), x)[:n]

    def generate(self, prompts: list[np.ndarray], options: GenerateOptions) -> list[list[int]]:
        with jax.default_device(self.jax_device):
            return jax_infer.generate(
                self.arch,
                self.config,
                self._params(),
                prompts,
                max_tokens=options.max_tokens,
                temperature=options.temperature,
                top_p=options.top_p,
                seed=options.seed,
            )

    def memory_bytes(self) -> int:
        return sum(int(v.nbytes) for v in (self.params or {}).values())

    def close(self) -> None:
        params, self.params = self.params, None
        for value in (params or {}).values():
            value.delete()

    def _params(self) -> dict[str, jax.Array]:
        if self.params is None:
            raise ResourceUnavailable("the model was unloaded")
        return self.params


def _jax_device(target: str) -> Any:
    if target == "cpu":
        return jax.devices("cpu")[0]
    index = int(target.split(":")[1])
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if index >= len(gpus):
        raise ResourceUnavailable(f"JAX sees no GPU {index} on this node", {"device": target})
    return gpus[index]
