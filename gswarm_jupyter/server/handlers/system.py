"""System routes of the control plane: health, metrics, nodes."""

from __future__ import annotations

from typing import Any

from ...core.clock import iso
from ...core.pagination import PageQuery, paginate
from ...core.records import ClusterMetrics, Health, NodeDetail, NodeList, NodeResources
from ..base import GswarmHandler
from ..context import GswarmContext
from ..routes import CONTROL, Op, Route
from .dask_dashboard import dashboard_path


def health(ctx: GswarmContext) -> dict[str, Any]:
    runtime = ctx.runtime
    online = len(runtime.nodes.online())
    reason = runtime.reason
    if reason is None and online == 0:
        reason = "no node is online"
    return {
        "status": "healthy" if reason is None else "degraded",
        "version": ctx.version,
        "uptime": ctx.uptime,
        "nodes_online": online,
        "nodes_total": len(runtime.nodes.all()),
        "scheduler": {**runtime.scheduler_info(), "dashboard_path": dashboard_path(runtime)},
        "reason": reason,
    }


class HealthHandler(GswarmHandler):
    def get(self) -> None:
        self.reply(health(self.gswarm))


class NodesHandler(GswarmHandler):
    def get(self) -> None:
        page = self.query(PageQuery)
        nodes = [n.summary() for n in self.gswarm.runtime.nodes.all()]
        self.reply(paginate(nodes, page, "nodes"))


class NodeHandler(GswarmHandler):
    def get(self, node: str) -> None:
        self.reply(self.gswarm.runtime.nodes.get(node).detail())


class NodeResourcesHandler(GswarmHandler):
    def get(self, node: str) -> None:
        self.reply(self.gswarm.runtime.nodes.get(node).resources())


def cluster_metrics(ctx: GswarmContext) -> dict[str, Any]:
    nodes: dict[str, Any] = {}
    for node in ctx.runtime.nodes.all():
        devices = {}
        for name, usage in node.devices.items():
            total, used = usage.get("total"), usage.get("used")
            devices[name] = {
                **usage,
                "memory_utilization": None if not total or used is None else used / total,
            }
        for gpu in node.report.get("gpus", []):
            devices[gpu["device"]]["utilization"] = gpu.get("usage")
        nodes[node.name] = {
            "status": "online" if node.online else "offline",
            "cpu": node.report.get("cpu"),
            "devices": devices,
        }
    requests = {"total": sum(ctx.requests.values())}
    requests.update({str(status): n for status, n in sorted(ctx.requests.items())})
    tasks = ctx.tasks.queue.counts()
    return {"nodes": nodes, "tasks": tasks, "requests": requests, "timestamp": iso()}


class MetricsHandler(GswarmHandler):
    def get(self) -> None:
        self.reply(cluster_metrics(self.gswarm))


routes = [
    Route(f"{CONTROL}/health", HealthHandler, {"get": Op("Server and cluster health", Health)}),
    Route(
        f"{CONTROL}/metrics",
        MetricsHandler,
        {"get": Op("Cluster metrics per node and device, and request counters", ClusterMetrics)},
    ),
    Route(
        f"{CONTROL}/nodes",
        NodesHandler,
        {"get": Op("The cluster's nodes", NodeList, query=PageQuery, errors=(400,))},
        tag="nodes",
    ),
    Route(
        f"{CONTROL}/nodes/{{node}}",
        NodeHandler,
        {"get": Op("One node with its devices' capacities", NodeDetail, errors=(404,))},
        tag="nodes",
    ),
    Route(
        f"{CONTROL}/nodes/{{node}}/resources",
        NodeResourcesHandler,
        {"get": Op("A node's storage and compute usage", NodeResources, errors=(404,))},
        tag="nodes",
    ),
]
