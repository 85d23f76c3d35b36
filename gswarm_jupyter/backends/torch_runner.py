"""The torch runner: `gswarm_kernels.torch_models` modules on `cpu` or `cuda:N`."""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import torch
from gswarm_kernels import torch_infer, torch_models

from ..core.errors import ResourceUnavailable
from .base import GenerateOptions, Runner
from .devices import framework_device


class TorchRunner(Runner):
    framework = "torch"

    def __init__(self, arch: str, config: dict[str, Any], params: dict[str, Any], device: str) -> None:
        target = framework_device(device)
        if target.startswith("cuda") and not _cuda_has(target):
            raise ResourceUnavailable(f"no CUDA device {target} on this node", {"device": device})
        self.module: torch_models.BuiltinModule | None = torch_models.build_module(
            arch, config, params, device=target
        )
        super().__init__(arch, self.module.config, target)
        self._cuda = target.startswith("cuda")
        self._peak: int | None = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._measured(lambda: torch_infer.predict(self._module(), x))

    def generate(self, prompts: list[np.ndarray], options: GenerateOptions) -> list[list[int]]:
        return self._measured(
            lambda: torch_infer.generate(
                self._module(),
                prompts,
                max_tokens=options.max_tokens,
                temperature=options.temperature,
                top_p=options.top_p,
                seed=options.seed,
            )
        )

    def memory_bytes(self) -> int:
        if self.module is None:
            return 0
        tensors = [*self.module.parameters(), *self.module.buffers()]
        return sum(t.numel() * t.element_size() for t in tensors)

    def peak_extra_bytes(self) -> int | None:
        return self._peak

    def close(self) -> None:
        self.module = None
        gc.collect()
        if self._cuda:
            torch.cuda.empty_cache()

    def _module(self) -> torch_models.BuiltinModule:
        if self.module is None:
            raise ResourceUnavailable("the model was unloaded")
        return self.module

    def _measured(self, fn: Any) -> Any:
        if not self._cuda:
            return fn()
        device = torch.device(self.device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        result = fn()
        self._peak = max(0, torch.cuda.max_memory_allocated(device) - before)
        return result


def _cuda_has(device: str) -> bool:
    index = int(device.split(":")[1])
    return torch.cuda.is_available() and index < torch.cuda.device_count()
