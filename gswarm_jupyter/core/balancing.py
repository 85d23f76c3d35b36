"""Choosing a replica for a request: `round_robin` or `least_loaded` (fewest requests in flight,
ties in round-robin order)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, TypeVar, get_args

Policy = Literal["round_robin", "least_loaded"]
POLICIES: tuple[str, ...] = get_args(Policy)

T = TypeVar("T")


class Balancer:
    def __init__(self, policy: Policy = "round_robin") -> None:
        self.policy = policy
        self._turn = 0

    def pick(self, candidates: Sequence[T], load: Callable[[T], int]) -> T:
        """One of `candidates` (not empty)."""
        if not candidates:
            raise ValueError("no candidates to pick from")
        start = self._turn % len(candidates)
        self._turn += 1
        ordered = [*candidates[start:], *candidates[:start]]
        if self.policy == "least_loaded":
            return min(ordered, key=load)  # min keeps the first of equals
        return ordered[0]
