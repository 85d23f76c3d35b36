"""The compute plane's routes."""

from __future__ import annotations

from typing import Any

from ...core.clock import iso
from ...core.records import ComputeHealth
from ..base import GswarmHandler
from ..context import GswarmContext
from ..routes import COMPUTE, Op, Route
from .system import health


def compute_health(ctx: GswarmContext) -> dict[str, Any]:
    nodes = ctx.runtime.nodes.online()
    has_gpu = any(n.report.get("gpus") for n in nodes)
    dram = [n.devices.get("dram", {}) for n in nodes]
    used = [d.get("used") for d in dram]
    total = [d.get("total") for d in dram]
    memory_usage = None
    if dram and None not in used and None not in total and sum(total) > 0:  # type: ignore[arg-type]
        memory_usage = sum(used) / sum(total)  # type: ignore[arg-type]
    return {
        "status": health(ctx)["status"],
        "timestamp": iso(),
        "version": ctx.version,
        "uptime": ctx.uptime,
        "gpu_status": "available" if has_gpu else "unavailable",
        "memory_usage": memory_usage,
    }


class ComputeHealthHandler(GswarmHandler):
    auth_resource = "gswarm:compute"

    def get(self) -> None:
        self.reply(compute_health(self.gswarm))


routes = [
    Route(
        f"{COMPUTE}/health",
        ComputeHealthHandler,
        {"get": Op("Compute plane health", ComputeHealth)},
        tag="compute",
    ),
]
