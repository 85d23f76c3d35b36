"""Placement policy of model copies: room on a device, least-recently-used eviction, and which
copy to read from. Pure: the cluster side feeds it measured numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InsufficientMemory

# Which copy to read when there is a choice: memory before disk.
_READ_COST = {"dram": 1, "disk": 3}


@dataclass(frozen=True, slots=True)
class Resident:
    """A copy that sits on the target device now."""

    model_name: str
    size: int
    last_used: float
    evictable: bool  # ready, another ready copy elsewhere, not in use


def free_bytes(reported: int | None, cap: int | None, resident: int) -> int | None:
    """Room on a device: what the node reports free, bounded by the bytes models may still take
    under `cap` (the device's model capacity, if one is configured). None: unknown."""
    limits = [x for x in (reported, None if cap is None else cap - resident) if x is not None]
    return max(0, min(limits)) if limits else None


def plan_room(
    required: int,
    available: int | None,
    residents: Sequence[Resident],
    *,
    evict: bool | None,
    device: str,
) -> list[Resident]:
    """The copies to evict (least recently used first) so that `required` bytes fit;
    `InsufficientMemory` if they cannot (or may not) be made to fit. `evict` None: eviction is
    not offered (the error suggests none)."""
    if available is None or required <= available:
        return []
    chosen: list[Resident] = []
    room = available
    if evict:
        for resident in sorted(residents, key=lambda r: (r.last_used, r.model_name)):
            if not resident.evictable:
                continue
            chosen.append(resident)
            room += resident.size
            if required <= room:
                return chosen
    hint = "; ask with evict: true to evict copies kept elsewhere" if evict is False else ""
    raise InsufficientMemory(
        f"{device} has {available} bytes available; {required} are needed{hint}",
        required=required,
        available=available,
        device=device,
    )


def read_cost(device: str) -> int:
    """Cheaper copies are read first (memory, then GPUs, then disk)."""
    return _READ_COST.get(device, 2)


def choose_source(
    candidates: Sequence[tuple[str, str]], target_node: str
) -> tuple[str, str] | None:
    """The (node, device) to copy from: on the target's node if possible, then the cheapest."""
    ranked = sorted(candidates, key=lambda c: (c[0] != target_node, read_cost(c[1]), c))
    return ranked[0] if ranked else None
