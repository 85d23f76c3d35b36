"""A Hugging Face model's tensors on one torch device, answering right-padded id batches and
generating (greedy or sampled) for causal models."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..generation import generate_with
from ..inputs import check_sampling
from ..torch_infer import sample
from . import torch_forward
from .quantize import compute_params
from .spec import HFSpec


class TorchModel:
    """`spec`'s model with `params` on `device` (int8 linear weights stay int8 there)."""

    def __init__(self, spec: HFSpec, params: Mapping[str, np.ndarray], device: str = "cpu") -> None:
        self.spec = spec
        self.device = torch.device(device)
        self.params: dict[str, torch.Tensor] = {
            name: torch.from_numpy(value).to(self.device)
            for name, value in compute_params(params).items()
        }

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Embeddings, class logits or next-token logits of `(n, t)` ids and their mask."""
        with torch.inference_mode():
            out = torch_forward.forward(
                self.spec,
                self.params,
                torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64)).to(self.device),
                torch.from_numpy(np.ascontiguousarray(mask, dtype=np.int64)).to(self.device),
            )
            return out.float().cpu().numpy()

    def generate(
        self,
        prompts: Sequence[np.ndarray],
        *,
        max_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int = 0,
    ) -> list[list[int]]:
        """Generated ids only, per prompt; a row ends early at the end-of-text id."""
        if not self.spec.generates:
            raise ValueError(f"generate: a {self.spec.model_type} model does not generate")
        check_sampling(max_tokens, temperature, top_p)
        generator = torch.Generator(device=self.device).manual_seed(seed)

        def step(tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                ids = torch.from_numpy(tokens).to(self.device)
                logits = torch_forward.gpt2_logits(self.spec, self.params, ids)
                rows = torch.arange(len(lengths), device=self.device)
                last = logits[rows, torch.from_numpy(lengths - 1).to(self.device)].float()
                return sample(last, temperature, top_p, generator).cpu().numpy()

        c = self.spec.config
        return generate_with(
            {"context": c.positions, "vocab": c.vocab},
            prompts,
            max_tokens,
            temperature,
            top_p,
            step,
            stop=c.eos_id,
        )

    def memory_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.params.values())
