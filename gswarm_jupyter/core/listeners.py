"""One small event bus: who hears of one object's changes (the task queue's tasks, the cluster's
nodes, the model store's models, the allocations).

A component subscribes once, at its construction (the app builds them in order); a stream while
it is open. `emit` tells every listener in the order they came; one that fails is logged and
never stops the others, nor the object that emits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

E = TypeVar("E")


class Listeners(Generic[E]):
    """The listeners of one kind of event (`what` names it in the log)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._listeners: list[Callable[[E], None]] = []

    def add(self, listener: Callable[[E], None]) -> None:
        self._listeners.append(listener)

    def discard(self, listener: Callable[[E], None]) -> None:
        """No longer tell `listener` (nothing happens if it was not listening)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def __len__(self) -> int:
        return len(self._listeners)

    def emit(self, event: E) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not stall the emitter or the others
                log.exception("gswarm: a %s listener failed", self.what)
