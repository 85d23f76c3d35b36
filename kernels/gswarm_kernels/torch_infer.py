"""Inference with a torch module from `torch_models.build_module`, on the module's device."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .generation import generate_with
from .inputs import as_token_matrix, as_vectors, check_batch_size
from .torch_models import BuiltinModule, module_device


def predict(module: BuiltinModule, data: Any, *, batch_size: int | None = None) -> np.ndarray:
    """mlp: rows `(n, in)` -> `(n, out)`; gpt: equal-length token rows -> logits `(n, time, vocab)`.

    Rows go through in chunks of `batch_size` (all at once by default).
    """
    check_batch_size(batch_size)
    x = _model_input(module, data)
    device = module_device(module)
    # Float input follows the module's dtype, so a half-precision module takes float32 rows.
    dtype = next(module.parameters()).dtype if x.dtype.kind == "f" else None
    step = batch_size or len(x)
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(x), step):
            batch = torch.from_numpy(x[start : start + step]).to(device, dtype)
            outputs.append(module(batch).float().cpu().numpy())
    return np.concatenate(outputs)


def generate(
    module: BuiltinModule,
    prompts: Any,
    *,
    max_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
) -> list[list[int]]:
    """gpt: `max_tokens` new tokens per prompt (prompts may be ragged); temperature 0 is greedy."""
    if module.arch != "gpt":
        raise ValueError(f"generate: {module.arch} is not a language model")
    device = module_device(module)
    generator = torch.Generator(device=device).manual_seed(seed)

    def step(tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = module(torch.from_numpy(tokens).to(device))
            rows = torch.arange(len(lengths), device=device)
            last = logits[rows, torch.from_numpy(lengths - 1).to(device)].float()
            return sample(last, temperature, top_p, generator).cpu().numpy()

    return generate_with(module.config, prompts, max_tokens, temperature, top_p, step)


def sample(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator
) -> torch.Tensor:
    """One token per row of `(batch, vocab)` logits: argmax at temperature 0, else top-p."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always at least the top token).
        outside = (sorted_probs.cumsum(-1) - sorted_probs) >= top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _model_input(module: BuiltinModule, data: Any) -> np.ndarray:
    if module.arch == "mlp":
        return as_vectors(module.config, data)
    return as_token_matrix(module.config, data)
