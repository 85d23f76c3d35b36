"""One asyncio lock per key (a model name, say): made on first use, forgotten once nobody holds
or waits on it, so any number of keys costs only the locks in use."""

from __future__ import annotations

import asyncio
import weakref


class KeyedLocks:
    """`async with locks(key):` serialises the blocks that name the same key."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def __call__(self, key: str) -> asyncio.Lock:
        """The lock of `key` (the same object while anyone holds or awaits it)."""
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock
