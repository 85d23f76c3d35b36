"""`%gswarm status`, `nodes`, `connect` (with a token or an API key)."""

from __future__ import annotations

import argparse
from typing import Any

from ..core.units import format_bytes, format_ratio
from .commands import OUT, arg, command
from .display import Column, Table


@command(
    "connect", "Talk to a gswarm server at URL", arg("url"), arg("--token", default=None),
    arg("--key", default=None, metavar="API_KEY", help="an API key (gsk_...) instead of a token"),
)
def connect(magics: Any, args: argparse.Namespace, cell: str | None) -> Any:
    client = magics.connect(args.url, args.token, args.key)
    health = client.health()
    print(f"connected to {client.base_url}: {health['status']}, {health['nodes_online']} nodes online")


@command("status", "Server and cluster health", OUT)
def status(magics: Any, args: argparse.Namespace, cell: str | None) -> Any:
    health = magics.client.health()
    magics.keep(args, health)
    rows = [
        {"what": "status", "value": health["status"]},
        {"what": "version", "value": health["version"]},
        {"what": "uptime", "value": f"{health['uptime']:.0f} s"},
        {"what": "nodes", "value": f"{health['nodes_online']} online of {health['nodes_total']}"},
        {"what": "scheduler", "value": health["scheduler"].get("address")},
    ]
    if health.get("reason"):
        rows.append({"what": "reason", "value": health["reason"]})
    return Table(rows, [Column("what", ""), Column("value", "")], title="gswarm")


def _device_cell(devices: dict[str, Any], name: str) -> str:
    usage = devices.get(name) or {}
    total, used = usage.get("total"), usage.get("used")
    ratio = used / total if used is not None and total else None
    return f"{format_bytes(used)} / {format_bytes(total)} ({format_ratio(ratio)})"


@command("nodes", "The cluster's nodes and their devices", OUT)
def nodes(magics: Any, args: argparse.Namespace, cell: str | None) -> Any:
    client = magics.client
    detailed = [client.node(n["node_id"]) for n in client.nodes()]
    magics.keep(args, detailed)
    rows = [
        {
            "node": n["node_id"],
            "status": n["status"],
            "host": n.get("hostname"),
            "gpus": len(n["capabilities"]["gpus"]),
            "dram": _device_cell(n["devices"], "dram"),
            "disk": _device_cell(n["devices"], "disk"),
        }
        for n in detailed
    ]
    columns = [Column(k, k) for k in ("node", "status", "host", "gpus", "dram", "disk")]
    return Table(rows, columns, title=f"{len(rows)} nodes")
