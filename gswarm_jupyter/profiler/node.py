"""The node side on Dask workers: a companion `WorkerPlugin` of the node agent that runs the
node's sampling loop, and `sync_node`, which the server runs on every worker to collect frames.

The server pulls (`Client.run`) rather than the workers pushing through Dask's pub/sub or event
topics: those are fire-and-forget (the scheduler keeps a bounded log; a subscriber that is away
misses events), whereas a pull that carries the acknowledgement of the previous one lets the
worker keep every frame until the server holds it.
"""

from __future__ import annotations

from typing import Any

from distributed import Worker, WorkerPlugin

from .loop import IDLE_INTERVAL_MS, SamplingLoop
from .samplers import NodeSampler

PLUGIN_NAME = "gswarm-sampler"

# (session name, period in ms, node names or None for every node)
SessionSpec = tuple[str, int, list[str] | None]


class SamplerPlugin(WorkerPlugin):
    name = PLUGIN_NAME

    def __init__(self, idle_interval_ms: int = IDLE_INTERVAL_MS) -> None:
        self.idle_interval_ms = idle_interval_ms
        self.loop: SamplingLoop | None = None

    def setup(self, worker: Worker) -> None:
        self.loop = SamplingLoop(
            NodeSampler(str(worker.name)), idle_interval_ms=self.idle_interval_ms
        )
        self.loop.start()

    def teardown(self, worker: Worker) -> None:
        if self.loop is not None:
            self.loop.stop()


def plan_for(node: str, specs: list[SessionSpec]) -> dict[str, int]:
    """The sessions that sample `node`, with their periods."""
    return {name: ms for name, ms, nodes in specs if nodes is None or node in nodes}


def sync_node(
    acks: dict[str, tuple[str, int]],
    specs: list[SessionSpec],
    limit: int = 20_000,
    dask_worker: Worker | None = None,
) -> dict[str, Any]:
    """On a worker: drop what the server acknowledged, apply the plan, answer pending frames."""
    assert dask_worker is not None
    node = str(dask_worker.name)
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    if not isinstance(plugin, SamplerPlugin) or plugin.loop is None:
        return {"node": node, "missing": True}
    loop = plugin.loop
    instance, seq = acks.get(node, ("", 0))
    acked = seq if instance == loop.buffer.instance else 0
    frames = loop.sync(acked, plan_for(node, specs), limit)
    return {"node": node, "info": loop.info(), "frames": frames}
