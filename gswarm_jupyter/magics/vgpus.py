"""`%gswarm vgpus`: list, create and delete virtual GPUs (`/virtualization/gpus`, admin)."""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.error import UsageError

from ..core.units import format_bytes
from .commands import OUT, arg, command
from .display import Column, Table
from .models import byte_rate

ACTIONS = ("list", "create", "delete")
COLUMNS = [Column(k, k) for k in ("virtual_gpu_id", "device", "backing", "quota", "used", "free",
                                  "units", "policy")]


def _row(vgpu: dict[str, Any]) -> dict[str, Any]:
    return {
        "virtual_gpu_id": vgpu["virtual_gpu_id"],
        "device": f"{vgpu['node']}:{vgpu['device']}",
        "backing": f"{vgpu['backing']} ({vgpu['physical_gpu_id']})",
        "quota": format_bytes(vgpu["memory_size"]),
        "used": format_bytes(vgpu.get("memory_used")),
        "free": format_bytes(vgpu.get("memory_available")),
        "units": vgpu["compute_units"],
        "policy": vgpu["scheduling_policy"],
    }


@command(
    "vgpus", "virtual GPUs: list (default), create NAME --memory SIZE [--units N], delete NAME",
    arg("action", nargs="?", default="list", choices=ACTIONS),
    arg("name", nargs="?", default=None, help="the virtual GPU's id"),
    arg("--memory", default=None, help="its memory quota (e.g. 512MiB, 2GB)"),
    arg("--units", type=int, default=1, help="compute units: its share of the device's batches"),
    arg("--policy", default="weighted", choices=("weighted", "round_robin"),
        help="scheduling policy (default weighted)"),
    arg("--node", default=None, help="the node to carve it on (default: most free memory)"),
    arg("--physical", default=None, help="gpuN to carve from (default: the node's first GPU, "
        "else host memory)"),
    arg("--force", action="store_true", help="delete: remove what sits on it first"),
    OUT,
)
def vgpus(magics: Any, args: argparse.Namespace, cell: str | None) -> Any:
    api = magics.client.compute
    if args.action == "create":
        if not args.name or not args.memory:
            raise UsageError("%gswarm vgpus create NAME --memory SIZE [--units N] [--node node1]")
        try:
            size = byte_rate(args.memory)
        except argparse.ArgumentTypeError as exc:
            raise UsageError(str(exc)) from None
        made = api.vgpu_create(args.name, size, args.units, args.policy, args.node, args.physical)
        magics.keep(args, made)
        print(f"created {made['virtual_gpu_id']} as {made['node']}:{made['device']} "
              f"({format_bytes(made['memory_size'])}, {made['compute_units']} units, "
              f"backing {made['backing']})")
        return None
    if args.action == "delete":
        if not args.name:
            raise UsageError("name the virtual GPU: %gswarm vgpus delete NAME [--force]")
        gone = api.vgpu_delete(args.name, force=args.force)
        magics.keep(args, gone)
        removed = ", ".join(f"{len(v)} {k}" for k, v in gone["removed"].items() if v)
        print(f"deleted {gone['virtual_gpu_id']}" + (f" (removed {removed})" if removed else ""))
        return None
    listed = api.vgpus()
    magics.keep(args, listed)
    return Table([_row(v) for v in listed], COLUMNS, title=f"{len(listed)} virtual GPUs")
