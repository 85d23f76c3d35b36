"""What the torch and JAX runners of a Hugging Face model share: rows in (strings tokenised here, or
token-id rows), a batch of variable-length rows right-padded with its attention mask, and the
answer of the model type (embedding vectors, class scores, or generated ids and their text).

A row answers the same alone or in any batch: padding is masked (encoders) or behind the causal
mask (decoders), so only float rounding of the wider matmuls can differ.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np
from gswarm_kernels.hf.inputs import model_rows, pad_batch
from gswarm_kernels.hf.model_dir import HFModel
from gswarm_kernels.hf.tokenizer import tokenizer_for

from .base import GenerateOptions, Runner, invalid_input
from .registry import HF_ARCH


class HFRunner(Runner):
    """One Hugging Face model on one device; subclasses supply the framework's model."""

    def __init__(self, model: HFModel, device: str) -> None:
        self.spec = model.spec
        self.model_type = model.spec.model_type
        self.tokenizer = tokenizer_for(model.spec, model.tokenizer_json)
        config = {"model_type": self.model_type, "architecture": model.spec.architecture}
        super().__init__(HF_ARCH, config, device)

    @property
    def generates(self) -> bool:
        return self.spec.generates

    @property
    def labels(self) -> tuple[str, ...]:
        """A classifier's class names, in score order."""
        return self.spec.labels

    def check(self, rows: Any, options: GenerateOptions) -> list[np.ndarray]:
        """Token-id rows of a request (strings are tokenised), or `InvalidInputData`."""
        from gswarm_kernels import inputs

        try:
            if self.generates:
                inputs.check_sampling(options.max_tokens, options.temperature, options.top_p)
                inputs.check_int("seed", options.seed, 0)
            return model_rows(self.spec, self.tokenizer, rows)
        except ValueError as exc:
            error = invalid_input(exc)
            error.details["model_type"] = self.model_type
            raise error from None

    def run(self, rows: list[np.ndarray], options: GenerateOptions) -> list[list[Any]]:
        """Generated ids per row (causal models), else an output row per row of the padded batch."""
        try:
            if self.generates:
                return self.generate(rows, options)
            ids, mask = pad_batch(rows, pad_id=self.spec.config.pad_id)
            return self.encode(ids, mask).tolist()
        except ValueError as exc:
            raise invalid_input(exc) from None

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Equal-length token rows, none padded."""
        return self.encode(x, np.ones_like(x))

    def decode(self, rows: list[list[int]]) -> list[str] | None:
        """Text of generated ids (None without a tokenizer)."""
        return None if self.tokenizer is None else self.tokenizer.decode(rows)

    def outputs(self, rows: list[np.ndarray]) -> np.ndarray:
        """Float outputs of checked rows, to compare two copies of a model: embeddings or class
        scores per row; a causal model's next-token logits at every real position."""
        ids, mask = pad_batch(rows, pad_id=self.spec.config.pad_id)
        out = self.encode(ids, mask)
        return out[mask.astype(bool)] if self.generates else out

    @abstractmethod
    def encode(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The forward pass over right-padded ids `(n, t)` and their mask."""
