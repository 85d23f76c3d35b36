"""What a worker holds for same-host copies in flight (`memread`'s pins, `shmcopy`'s files), by
the server's token for each copy.

Invariant: once `release(token)` ran, `hold(token, ...)` refuses that token (among the last
`REMEMBERED` released), so an export that finishes after the server gave its copy up (cancelled,
failed, timed out) keeps nothing: the server releases every token it handed out, whatever became
of the export.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

T = TypeVar("T")

REMEMBERED = 4096  # released tokens kept, so a late export is still refused


class Handoffs(Generic[T]):
    """Values held by token until released; a released token is refused afterwards."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, T] = {}
        self._released: OrderedDict[str, None] = OrderedDict()

    def hold(self, token: str, value: T) -> bool:
        """Keep `value` under `token` unless that token was released; answers whether kept."""
        with self._lock:
            if token in self._released:
                return False
            self._held[token] = value
            return True

    def release(self, token: str) -> T | None:
        """Forget `token` for good; answers what it held, if anything."""
        with self._lock:
            self._released[token] = None
            if len(self._released) > REMEMBERED:
                self._released.popitem(last=False)
            return self._held.pop(token, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)
