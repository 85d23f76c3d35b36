"""What every framework runner shares: input checks, batching of rows, and the result shape.

A runner holds one model (arch, config, params) on one device. `check` turns a request's rows into
well-formed arrays (or raises `InvalidInputData` naming expected vs got); `run` answers the output
rows of already-checked rows. Subclasses supply the framework's forward pass and generation.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.errors import InvalidInputData

DEFAULT_MAX_TOKENS = 16


@dataclass(frozen=True, slots=True)
class GenerateOptions:
    """Sampling options of a language-model request; temperature 0 is greedy."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0

    @classmethod
    def of(cls, options: dict[str, Any] | None) -> GenerateOptions:
        given = {k: v for k, v in (options or {}).items() if v is not None}
        return cls(**{k: given[k] for k in ("max_tokens", "temperature", "top_p", "seed") if k in given})


_EXPECTED_GOT = re.compile(
    r"^(?P<field>[\w\[\]\.]+): (?:expected )?(?P<expected>.*), got (?P<got>.*)$", re.S
)


def invalid_input(exc: ValueError) -> InvalidInputData:
    """A kernel's `field: expected X, got Y` ValueError as `INVALID_INPUT_DATA` with the parts."""
    message = str(exc)
    match = _EXPECTED_GOT.match(message)
    details: dict[str, Any] = {"field": message.split(":", 1)[0]}
    if match:
        details = {k: match.group(k) for k in ("field", "expected", "got")}
    return InvalidInputData(message, details)


class Runner(ABC):
    """One model loaded on one device by one framework."""

    framework: str = ""

    def __init__(self, arch: str, config: dict[str, Any], device: str) -> None:
        self.arch = arch
        self.config = config
        self.device = device

    @property
    def generates(self) -> bool:
        """Token rows in, generated tokens out (else float rows in, float rows out)."""
        return self.arch == "gpt"

    # -- checking ---------------------------------------------------------------------------

    def check(self, rows: Any, options: GenerateOptions) -> list[np.ndarray]:
        """The request's rows as arrays, or `InvalidInputData` (expected vs got)."""
        from gswarm_kernels import inputs

        try:
            if self.generates:
                inputs.check_sampling(options.max_tokens, options.temperature, options.top_p)
                inputs.check_int("seed", options.seed, 0)
                return inputs.as_token_rows(self.config, rows)
            return list(inputs.as_vectors(self.config, rows))
        except ValueError as exc:
            raise invalid_input(exc) from None

    # -- running ----------------------------------------------------------------------------

    def run(self, rows: list[np.ndarray], options: GenerateOptions) -> list[list[Any]]:
        """Output rows of checked rows, in one forward pass (or one generation)."""
        try:
            if self.generates:
                return self.generate(rows, options)
            return self.predict(np.stack(rows)).tolist()
        except ValueError as exc:
            raise invalid_input(exc) from None

    @abstractmethod
    def predict(self, x: np.ndarray) -> np.ndarray:
        """mlp: float32 `(n, in)` -> `(n, out)`."""

    @abstractmethod
    def generate(self, prompts: list[np.ndarray], options: GenerateOptions) -> list[list[int]]:
        """gpt: generated tokens only, per prompt."""

    def decode(self, rows: list[list[int]]) -> list[str] | None:
        """Text of generated token rows, for models with a tokenizer (built-ins have none)."""
        return None

    # -- memory -----------------------------------------------------------------------------

    @abstractmethod
    def memory_bytes(self) -> int:
        """Bytes the model's tensors hold on the device (measured from the tensors)."""

    def peak_extra_bytes(self) -> int | None:
        """Extra device memory the last run's peak used beyond the weights, where measurable."""
        return None

    def close(self) -> None:
        """Drop the model's tensors so the device memory is freed."""
