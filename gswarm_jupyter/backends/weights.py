"""Sizes of a model's weights, from its architecture alone."""

from __future__ import annotations

from math import prod
from typing import Any


def param_bytes(arch: str, config: dict[str, Any]) -> int:
    """float32 bytes of the model's parameters (what a loaded copy holds)."""
    from gswarm_kernels import param_shapes

    return 4 * sum(prod(shape) for shape in param_shapes(arch, config).values())
