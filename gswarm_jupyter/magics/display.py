"""A table that renders as HTML in a notebook and as aligned text in a terminal."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    fmt: Callable[[Any], str] = lambda v: "-" if v is None else str(v)


class Table:
    def __init__(self, rows: Sequence[dict[str, Any]], columns: Sequence[Column], title: str = ""):
        self.rows = list(rows)
        self.columns = list(columns)
        self.title = title

    def cells(self) -> list[list[str]]:
        return [[c.fmt(_get(row, c.key)) for c in self.columns] for row in self.rows]

    def __repr__(self) -> str:
        header = [c.title for c in self.columns]
        body = self.cells()
        widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in body]
        if not body:
            lines.append("(none)")
        return "\n".join(([self.title] if self.title else []) + lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c.title)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
            for row in self.cells()
        ) or f'<tr><td colspan="{len(self.columns)}">(none)</td></tr>'
        caption = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _get(row: dict[str, Any], key: str) -> Any:
    """`a.b` reaches into nested dicts."""
    value: Any = row
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
