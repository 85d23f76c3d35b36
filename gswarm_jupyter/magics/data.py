"""`%gswarm data`: the data pool's chunks."""

from __future__ import annotations

import argparse
from typing import Any

from ..core.units import format_bytes
from .commands import OUT, arg, command
from .display import Column, Table


def locations_cell(locations: list[dict[str, Any]]) -> str:
    """`node1:dram, node2:dram (copying)`: a copy's status is shown unless it is available."""
    return ", ".join(
        loc["device"] if loc["status"] == "available" else f"{loc['device']} ({loc['status']})"
        for loc in locations
    )


@command(
    "data", "The data pool's chunks",
    arg("--node", default=None, help="only chunks with a copy on NODE"),
    arg("--device", default=None, help="only chunks with a copy on DEVICE (e.g. dram, node1:dram)"),
    OUT,
)
def data(magics: Any, args: argparse.Namespace, cell: str | None) -> Table:
    chunks = magics.client.data.list(node=args.node, device=args.device)
    magics.keep(args, chunks)
    rows = [
        {
            "id": c["chunk_id"],
            "type": c["chunk_type"],
            "format": c["format"],
            "size": format_bytes(c["size"]),
            "locations": locations_cell(c["locations"]),
        }
        for c in chunks
    ]
    columns = [Column(k, k) for k in ("id", "type", "format", "size", "locations")]
    return Table(rows, columns, title=f"{len(rows)} chunks")
