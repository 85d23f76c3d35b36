"""A per-device byte ledger: every device has a capacity, holders reserve bytes on it, and under one
lock the sum of what is held never exceeds the capacity and no holding is ever negative.

Shared by allocations and virtual GPUs; it knows nothing of either (a holder is an opaque key).
A refused reservation raises `InsufficientMemory` with `required`, `available` and `device`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ...core.errors import InsufficientMemory, NotFound


@dataclass
class _Device:
    capacity: int
    held: dict[str, int] = field(default_factory=dict)

    @property
    def used(self) -> int:
        return sum(self.held.values())


@dataclass(frozen=True)
class DeviceUsage:
    """One device's state at one instant."""

    device: str
    capacity: int
    used: int
    holders: dict[str, int]

    @property
    def available(self) -> int:
        return self.capacity - self.used


class ByteLedger:
    """Bytes held per device and holder; every method takes the one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._devices: dict[str, _Device] = {}

    def set_capacity(self, device: str, capacity: int) -> None:
        """Declare `device` (or change its capacity); refused if less than what is held now."""
        if capacity < 0:
            raise ValueError(f"capacity of {device} must be >= 0, got {capacity}")
        with self._lock:
            entry = self._devices.get(device)
            if entry is None:
                self._devices[device] = _Device(capacity)
                return
            if capacity < entry.used:
                raise InsufficientMemory(
                    f"{device} holds {entry.used} bytes, more than a capacity of {capacity}",
                    required=entry.used,
                    available=capacity,
                    device=device,
                )
            entry.capacity = capacity

    def remove_device(self, device: str) -> dict[str, int]:
        """Forget `device`; answers what was held on it (holder -> bytes)."""
        with self._lock:
            entry = self._devices.pop(device, None)
            return dict(entry.held) if entry else {}

    def has(self, device: str) -> bool:
        with self._lock:
            return device in self._devices

    def reserve(self, device: str, holder: str, size: int) -> int:
        """Add `size` bytes to `holder` on `device`, or raise `InsufficientMemory` and change nothing.
        Answers the holder's total on the device."""
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        with self._lock:
            entry = self._entry(device)
            available = entry.capacity - entry.used
            if size > available:
                raise InsufficientMemory(
                    f"{device} has {available} bytes free, {size} asked",
                    required=size,
                    available=available,
                    device=device,
                )
            entry.held[holder] = entry.held.get(holder, 0) + size
            return entry.held[holder]

    def release(self, device: str, holder: str, size: int | None = None) -> int:
        """Free `size` bytes of `holder` on `device` (all it holds when None; never below zero).
        Answers the bytes freed; an unknown device or holder frees nothing."""
        with self._lock:
            entry = self._devices.get(device)
            if entry is None or holder not in entry.held:
                return 0
            held = entry.held[holder]
            freed = held if size is None else min(max(size, 0), held)
            if freed == held:
                del entry.held[holder]
            else:
                entry.held[holder] = held - freed
            return freed

    def held(self, device: str, holder: str) -> int:
        with self._lock:
            entry = self._devices.get(device)
            return entry.held.get(holder, 0) if entry else 0

    def usage(self, device: str) -> DeviceUsage:
        with self._lock:
            entry = self._entry(device)
            return DeviceUsage(device, entry.capacity, entry.used, dict(entry.held))

    def devices(self) -> list[DeviceUsage]:
        with self._lock:
            return [
                DeviceUsage(name, e.capacity, e.used, dict(e.held))
                for name, e in sorted(self._devices.items())
            ]

    def _entry(self, device: str) -> _Device:
        entry = self._devices.get(device)
        if entry is None:
            raise NotFound(f"no ledger for device {device}", {"device": device})
        return entry
