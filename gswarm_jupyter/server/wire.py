"""JSON text of what the server answers: replies, errors and socket events.

Invariant: every text written here is strict JSON (RFC 8259), which any parser reads, the browser's
`JSON.parse` included. JSON has no name for a float that is not finite: NaN and the infinities
(an inference output that overflowed float32, a loss that diverged) are written as `null`, as
JavaScript's `JSON.stringify` writes them. Objects JSON has no type for are written as their `str`.
"""

from __future__ import annotations

import json
import math
from typing import Any


def dumps(value: Any) -> str:
    """`value` as strict JSON: non-finite floats as `null`, other objects as their `str`."""
    try:
        return json.dumps(value, default=str, allow_nan=False)
    except ValueError:  # a non-finite float somewhere: rare, so only then is the value walked
        return json.dumps(finite(value), default=str, allow_nan=False)


def finite(value: Any) -> Any:
    """`value` with every non-finite float (NaN, +-infinity) in its dicts, lists and tuples made
    None; everything else as it is."""
    if isinstance(value, float):
        return None if _nonfinite(value) else value
    if isinstance(value, dict):  # a non-finite key is named as json.dumps names it
        return {json.dumps(k) if _nonfinite(k) else k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def _nonfinite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)
