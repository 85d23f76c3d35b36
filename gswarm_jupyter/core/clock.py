"""Time helpers: the contract's ISO 8601 UTC strings."""

from __future__ import annotations

import time
from datetime import datetime, timezone


def iso(epoch: float | None = None) -> str:
    """Epoch seconds (now by default) as `2026-01-01T00:00:00.123Z`."""
    moment = datetime.fromtimestamp(time.time() if epoch is None else epoch, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_or_none(epoch: float | None) -> str | None:
    return None if epoch is None else iso(epoch)
