"""Pure compute for gswarm: built-in architectures in twin torch and JAX versions over one parameter
layout, their checkpoints, inference, training and quantisation.

The framework-neutral API (numpy and safetensors only) is importable from here, loaded on first use.
Framework code lives in its own modules, which import torch or JAX:

- `torch_models`, `torch_infer`, `train_torch`
- `jax_models`, `jax_infer`, `train_jax`

Hugging Face checkpoints (BERT and GPT-2 families, read from a model directory) live in `hf`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ARCHITECTURES": "builtin",
    "BuiltinSpec": "builtin",
    "builtin_url": "builtin",
    "normalize_config": "builtin",
    "parse_builtin_url": "builtin",
    "Params": "params",
    "check_params": "params",
    "init_params": "params",
    "param_shapes": "params",
    "Checkpoint": "checkpoint",
    "checkpoint_bytes": "checkpoint",
    "parse_checkpoint_bytes": "checkpoint",
    "read_checkpoint": "checkpoint",
    "read_checkpoint_metadata": "checkpoint",
    "save_checkpoint": "checkpoint",
    "PRECISIONS": "quantization",
    "dequantize": "quantization",
    "param_bytes": "quantization",
    "params_precision": "quantization",
    "quantize": "quantization",
    "LOSSES": "training",
    "OPTIMIZERS": "training",
    "TrainResult": "training",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # static view of the lazy exports
    from .builtin import (  # noqa: F401
        ARCHITECTURES,
        BuiltinSpec,
        builtin_url,
        normalize_config,
        parse_builtin_url,
    )
    from .checkpoint import (  # noqa: F401
        Checkpoint,
        checkpoint_bytes,
        parse_checkpoint_bytes,
        read_checkpoint,
        read_checkpoint_metadata,
        save_checkpoint,
    )
    from .params import Params, check_params, init_params, param_shapes  # noqa: F401
    from .quantization import PRECISIONS, dequantize, param_bytes, params_precision, quantize  # noqa: F401
    from .training import LOSSES, OPTIMIZERS, TrainResult  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
