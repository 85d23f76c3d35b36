"""Names and devices as API.md section 3 fixes them.

Every pattern here is matched whole (`fullmatch`: `$` alone would let a trailing newline through)
and over ASCII only (`\\d` would take other scripts' digits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidRequest

MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
DEVICE = re.compile(r"disk|dram|gpu[0-9]+|vgpu[0-9]+")


def is_model_name(name: object) -> bool:
    """Whether `name` is a model name as API.md section 3 spells it (the whole string)."""
    return isinstance(name, str) and MODEL_NAME.fullmatch(name) is not None


def is_device(device: str) -> bool:
    """Whether `device` is a bare device name (`disk`, `dram`, `gpuN`, `vgpuN`)."""
    return DEVICE.fullmatch(device) is not None


def check_model_name(name: str, field: str = "model_name") -> str:
    if not is_model_name(name):
        raise InvalidRequest(
            f"invalid model name {name!r}: use letters, digits, '.', '_' or '-' (at most 128)",
            {"field": field},
        )
    return name


@dataclass(frozen=True, slots=True)
class DeviceRef:
    node: str
    device: str

    def __str__(self) -> str:
        return f"{self.node}:{self.device}"


def parse_device(text: str, nodes: list[str], field: str = "device") -> DeviceRef:
    """`node1:gpu0` or, on a one-node cluster, a bare `gpu0`.

    The node's existence is the caller's to check (an unknown node is 404, not 400).
    """
    node, sep, device = text.rpartition(":")
    if not sep:
        if len(nodes) != 1:
            raise InvalidRequest(
                f"device {text!r} must name its node (e.g. node1:{text}) on a cluster of "
                f"{len(nodes)} nodes",
                {"field": field},
            )
        node = nodes[0]
    if not node or not is_device(device):
        raise InvalidRequest(
            f"invalid device {text!r}: expected [node:]disk|dram|gpuN|vgpuN", {"field": field}
        )
    return DeviceRef(node, device)
