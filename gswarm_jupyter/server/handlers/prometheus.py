"""`{base_url}gswarm/metrics`: the cluster's latest readings as Prometheus text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..base import GswarmHandler
from ..context import GswarmContext
from ..routes import Op, Route
from .profiler import prometheus_families


class GswarmCollector:
    """Reads the context at scrape time; nothing is copied between scrapes."""

    def __init__(self, ctx: GswarmContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("gswarm_node_up", "1 if the node is online", labels=["node"])
        total = GaugeMetricFamily(
            "gswarm_device_memory_total_bytes", "Device capacity", labels=["node", "device"]
        )
        used = GaugeMetricFamily(
            "gswarm_device_memory_used_bytes", "Device bytes in use", labels=["node", "device"]
        )
        cpu = GaugeMetricFamily("gswarm_node_cpu_utilization_ratio", "Host CPU 0..1", labels=["node"])
        gpu_util = GaugeMetricFamily(
            "gswarm_gpu_utilization_ratio", "GPU utilisation 0..1", labels=["node", "device"]
        )
        gpu_temp = GaugeMetricFamily(
            "gswarm_gpu_temperature_celsius", "GPU temperature", labels=["node", "device"]
        )
        for node in self.ctx.runtime.nodes.all():
            up.add_metric([node.name], 1.0 if node.online else 0.0)
            for device, usage in node.devices.items():
                if usage.get("total") is not None:
                    total.add_metric([node.name, device], float(usage["total"]))  # type: ignore[arg-type]
                if usage.get("used") is not None:
                    used.add_metric([node.name, device], float(usage["used"]))  # type: ignore[arg-type]
            usage_now = (node.report.get("cpu") or {}).get("usage")
            if usage_now is not None:
                cpu.add_metric([node.name], float(usage_now))
            for gpu in node.report.get("gpus", []):
                if gpu.get("usage") is not None:
                    gpu_util.add_metric([node.name, gpu["device"]], float(gpu["usage"]))
                if gpu.get("temperature") is not None:
                    gpu_temp.add_metric([node.name, gpu["device"]], float(gpu["temperature"]))
        requests = CounterMetricFamily(
            "gswarm_http_requests", "Requests answered by status", labels=["status"]
        )
        for status, n in sorted(self.ctx.requests.items()):
            requests.add_metric([str(status)], float(n))
        yield from (up, total, used, cpu, gpu_util, gpu_temp, requests)
        yield from prometheus_families(self.ctx)


def registry_for(ctx: GswarmContext) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GswarmCollector(ctx))  # type: ignore[arg-type]
    return registry


class PrometheusHandler(GswarmHandler):
    def get(self) -> None:
        registry = self.settings.setdefault("gswarm_prometheus", registry_for(self.gswarm))
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(registry), set_content_type=CONTENT_TYPE_LATEST)


routes = [
    Route(
        "/gswarm/metrics",
        PrometheusHandler,
        {
            "get": Op(
                "The latest readings in Prometheus text format",
                content_type="text/plain",
                enveloped=False,
            )
        },
        tag="system",
    ),
]
