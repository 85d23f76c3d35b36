"""Keeps services as they should run. Every `interval` seconds: running replicas whose worker is
gone are marked `failed` (the service status tells the truth without waiting for a request), and
replicas that are down (restored after a server restart, or whose worker died) are loaded again:
on their own node once it is online, or on another eligible node after a grace period
(`core.recovery`). A replica that fails to load is tried again later, less and less often."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from ...core.aio import cancel_and_wait
from ...core.nodes import NodeDirectory
from ...core.recovery import RESTART_ELSEWHERE_AFTER, restart_node
from .replicas import Service
from .services import ServiceManager

log = logging.getLogger(__name__)

KEEP_INTERVAL = 1.0  # seconds between two looks at every replica


class ServiceKeeper:
    def __init__(
        self,
        services: ServiceManager,
        nodes: NodeDirectory,
        interval: float = KEEP_INTERVAL,
        elsewhere_after: float = RESTART_ELSEWHERE_AFTER,
    ) -> None:
        self.services = services
        self.nodes = nodes
        self.interval = interval
        self.elsewhere_after = elsewhere_after
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._keep_forever(), name="gswarm-service-keeper")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    def tick(self) -> None:
        """One look at every service: mark lost replicas, start reloading down ones."""
        online = {n.name: n.device_names for n in self.nodes.online()}
        for service in self.services.list():
            if not service.stopping:
                self.services.check_lost(service)
                self._reload_down(service, online, time.monotonic())

    def _reload_down(self, service: Service, online: dict[str, set[str]], now: float) -> None:
        load = Counter(r.node for r in service.replicas if r.live)
        for replica in service.replicas:
            if not replica.waiting or self.services.restarting(replica) or now < replica.next_try:
                continue
            assert replica.down_since is not None
            down_for = now - replica.down_since
            node = restart_node(replica.node, replica.device, online, service.nodes, down_for,
                                load, self.elsewhere_after)
            if node is not None:
                self.services.begin_restart(service, replica, node)
            elif down_for >= self.elsewhere_after:
                self.services.hold(replica, f"node {replica.node} is offline and no other "
                                            "eligible node is online; waiting for one")

    async def _keep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.tick()
            except Exception:  # one bad look must not end the keeping
                log.exception("gswarm: the service keeper's look failed")
