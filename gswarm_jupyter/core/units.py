"""Human-readable units for tables and panels."""

from __future__ import annotations


def format_bytes(n: int | float | None) -> str:
    """`1536` -> `1.5 KiB`; unknown stays visibly unknown."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"  # pragma: no cover


def format_ratio(r: float | None) -> str:
    return "-" if r is None else f"{100 * r:.0f}%"
