"""Tiny configs so every kernel test runs in well under a second of compute."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

MLP: dict[str, Any] = {"in": 6, "hidden": [12, 10], "out": 3, "activation": "relu"}
GPT: dict[str, Any] = {"vocab": 40, "d_model": 16, "layers": 2, "heads": 4, "context": 12}


def perturbed(
    params: dict[str, np.ndarray], seed: int = 1, scale: float = 0.1
) -> dict[str, np.ndarray]:
    """Noise on every tensor, so zero biases and unit LayerNorm scales get exercised too."""
    rng = np.random.default_rng(seed)
    return {
        name: (value + scale * rng.standard_normal(value.shape, dtype=np.float32)).astype(
            np.float32
        )
        for name, value in params.items()
    }


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(a)))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


from .hf_models import bert_classifier_path, bert_path, gpt2_path, minilm_path  # noqa: E402,F401
