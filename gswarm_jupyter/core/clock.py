"""Time helpers: the contract's ISO 8601 UTC strings."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone

LATEST_EPOCH_S = 253_402_300_799.0  # 9999-12-31T23:59:59Z: the last second an ISO time names


def iso(epoch: float | None = None) -> str:
    """Epoch seconds (now by default) as `2026-01-01T00:00:00.123Z`."""
    moment = datetime.fromtimestamp(time.time() if epoch is None else epoch, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_or_none(epoch: float | None) -> str | None:
    return None if epoch is None else iso(epoch)


_SECONDS: dict[float, str] = {}


def iso_many(epoch: float) -> str:
    """`iso(epoch)`, character for character, for streams of nearby moments (frames): the text of
    each whole second is made once (its microseconds rounded half to even, as `datetime` does)."""
    frac, whole = math.modf(epoch)
    if epoch < 0 or not math.isfinite(epoch):
        return iso(epoch)
    micros = round(frac * 1e6)
    if micros >= 1_000_000:
        micros, whole = micros - 1_000_000, whole + 1.0
    head = _SECONDS.get(whole)
    if head is None:
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        head = _SECONDS[whole] = iso(whole)[:-5]  # without ".000Z"
    return f"{head}.{micros // 1000:03d}Z"
