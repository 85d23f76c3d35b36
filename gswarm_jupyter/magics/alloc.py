"""`%gswarm alloc`: reserve memory (and compute units) on a device for a while, list and free
allocations (`/resources`)."""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.error import UsageError

from ..core.units import format_bytes
from .commands import OUT, arg, command
from .display import Column, Table
from .models import byte_rate

ACTIONS = ("list", "reserve", "free")
COLUMNS = [Column(k, k) for k in ("allocation_id", "device", "reserved", "used", "units",
                                  "owner", "ends")]


def _row(alloc: dict[str, Any]) -> dict[str, Any]:
    return {
        "allocation_id": alloc["allocation_id"],
        "device": alloc["gpu_id"],
        "reserved": format_bytes(alloc["memory_size"]),
        "used": format_bytes(alloc.get("used_bytes")),
        "units": alloc["compute_units"],
        "owner": alloc.get("owner", alloc["user_id"]),
        "ends": alloc["end_time"],
    }


@command(
    "alloc", "resource allocations: list (default), reserve SIZE --for SECONDS, free ALLOCATION",
    arg("action", nargs="?", default="list", choices=ACTIONS),
    arg("target", nargs="?", default=None,
        help="the size to reserve (e.g. 512MiB, 2GB), or the allocation to free"),
    arg("--for", dest="duration", type=float, default=None, metavar="SECONDS",
        help="how long the reservation lasts"),
    arg("--device", default=None, help="node1:gpu0, node1:vgpu0, node1:dram (default: the "
        "least loaded GPU, else a vGPU, else dram)"),
    arg("--units", type=float, default=1.0, help="compute units (default 1)"),
    arg("--user", default="notebook", help="user_id (informational for an API key)"),
    OUT,
)
def alloc(magics: Any, args: argparse.Namespace, cell: str | None) -> Any:
    api = magics.client.compute
    if args.action == "reserve":
        if not args.target or args.duration is None:
            raise UsageError("%gswarm alloc reserve SIZE --for SECONDS [--device node1:dram]")
        try:
            size = byte_rate(args.target)
        except argparse.ArgumentTypeError:
            raise UsageError(f"not a size: {args.target!r} (e.g. 512MiB, 2GB)") from None
        made = api.reserve(size, args.duration, args.units, args.device, args.user)
        magics.keep(args, made)
        print(f"reserved {format_bytes(made['memory_size'])} on {made['gpu_id']} as "
              f"{made['allocation_id']} until {made['end_time']}")
        return None
    if args.action == "free":
        if not args.target:
            raise UsageError("name the allocation: %gswarm alloc free ALLOCATION_ID")
        freed = api.free(args.target)
        magics.keep(args, freed)
        print(f"freed {freed['allocation_id']} ({format_bytes(freed['memory_size'])} on "
              f"{freed['gpu_id']})")
        return None
    listed = api.allocations()
    magics.keep(args, listed)
    return Table([_row(a) for a in listed], COLUMNS, title=f"{len(listed)} allocations")
