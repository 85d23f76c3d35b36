"""Sizes of a model's weights, from its architecture alone."""

from __future__ import annotations

from math import prod
from typing import Any


def param_bytes(arch: str, config: dict[str, Any]) -> int:
    """float32 bytes of the model's parameters (what a loaded copy holds); a Hugging Face
    model's were measured from its stored tensors (`config["param_bytes"]`)."""
    from gswarm_kernels import param_shapes

    if arch == "hf":
        return int(config.get("param_bytes") or 0)
    return 4 * sum(prod(shape) for shape in param_shapes(arch, config).values())
