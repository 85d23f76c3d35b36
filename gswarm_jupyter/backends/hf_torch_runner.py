"""The torch runner of a Hugging Face model: `gswarm_kernels.hf.torch_model` on cpu or cuda:N."""

from __future__ import annotations

import gc

import numpy as np
import torch
from gswarm_kernels.hf.model_dir import HFModel
from gswarm_kernels.hf.torch_model import TorchModel

from ..core.errors import ResourceUnavailable
from .base import GenerateOptions
from .devices import framework_device
from .hf_runner import HFRunner
from .torch_runner import _cuda_has


class HFTorchRunner(HFRunner):
    framework = "torch"

    def __init__(self, model: HFModel, device: str) -> None:
        target = framework_device(device)
        if target.startswith("cuda") and not _cuda_has(target):
            raise ResourceUnavailable(f"no CUDA device {target} on this node", {"device": device})
        self.model: TorchModel | None = TorchModel(model.spec, model.params, target)
        self._cuda = target.startswith("cuda")
        super().__init__(model, target)

    def encode(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self._model().forward(ids, mask)

    def generate(self, prompts: list[np.ndarray], options: GenerateOptions) -> list[list[int]]:
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
        self.model = None
        gc.collect()
        if self._cuda:
            torch.cuda.empty_cache()

    def _model(self) -> TorchModel:
        if self.model is None:
            raise ResourceUnavailable("the model was unloaded")
        return self.model
