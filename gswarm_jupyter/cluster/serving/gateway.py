"""The gateway: routes each inference request to a live replica of its model's services.

A request goes to the replica it prefers (its session's pin) while that one is live, otherwise to
the one the model's `Balancer` picks. A replica found lost on the way is marked `failed` and the
request retried on another live replica; when none is left it fails with `RESOURCE_UNAVAILABLE`
naming the replicas lost. Later requests go to live replicas only. Requests travel to their
replica over its direct channel (`channel.py`), batched with those that arrive with them.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from ...core.balancing import Balancer, Policy
from ...core.errors import InvalidRequest, ModelNotFound, NotFound, ResourceUnavailable
from ...core.nodes import NodeDirectory
from .replicas import Replica, ReplicaLost, Service, channel_of, find_service, gone, watched

log = logging.getLogger(__name__)


class Gateway:
    """Routes requests over the live replicas of `services` (the dict its manager keeps)."""

    def __init__(
        self, nodes: NodeDirectory, services: dict[str, Service], announce: Callable[[str], None]
    ) -> None:
        self.nodes = nodes
        self.services = services
        self._announce = announce  # tells who needs to know that a model's live replicas changed
        self._balancers: dict[str, Balancer] = {}

    def balance(self, model_name: str, strategy: Policy) -> None:
        """Spread the model's requests by `strategy` (the first service started sets it)."""
        self._balancers.setdefault(model_name, Balancer(strategy))

    def forget(self, model_name: str) -> None:
        """The model has no service left."""
        self._balancers.pop(model_name, None)

    def live_replicas(self, model_name: str, service_id: str | None = None) -> list[Replica]:
        if service_id:
            services = [find_service(self.services, service_id)]
            if services[0].model.name != model_name:
                raise InvalidRequest(
                    f"service {service_id} serves {services[0].model.name}, not {model_name}",
                    {"field": "service_id"},
                )
        else:
            services = [s for s in self.services.values() if s.model.name == model_name]
        if not services:
            raise ModelNotFound(f"model {model_name!r} is not loaded", {"model_id": model_name})
        return [r for s in services for r in s.live_replicas]

    def find_replica(self, replica_id: str) -> Replica | None:
        for service in self.services.values():
            for replica in service.replicas:
                if replica.replica_id == replica_id:
                    return replica
        return None

    def service_of(self, replica: Replica) -> Service:
        for service in self.services.values():
            if replica in service.replicas:
                return service
        raise NotFound(f"replica {replica.replica_id} is gone", {"replica_id": replica.replica_id})

    async def infer(
        self,
        model_name: str,
        rows: Any,
        options: dict[str, Any],
        *,
        timeout: float | None = None,
        service_id: str | None = None,
        prefer: Replica | None = None,
    ) -> tuple[dict[str, Any], Replica]:
        """Answer from a live replica (`prefer` when it is live); a lost replica is marked failed
        and the request retried on another one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        lost: dict[str, str] = {}  # replica id -> where it was and why it was lost
        while True:
            candidates = [
                r for r in self.live_replicas(model_name, service_id) if r.replica_id not in lost
            ]
            if not candidates:
                reason = "every replica failed" if not lost else (
                    "its replicas were lost: " + "; ".join(lost.values()))
                raise ResourceUnavailable(
                    f"model {model_name!r} has no live replica: {reason}",
                    {"model_id": model_name, **({"lost": lost} if lost else {})},
                )
            if prefer is not None and prefer in candidates:
                replica = prefer
            else:
                balancer = self._balancers.setdefault(model_name, Balancer())
                replica = balancer.pick(candidates, lambda r: r.inflight)
            config = self.service_of(replica).config
            if timeout is None:
                timeout = config.timeout
                deadline = None if timeout is None else time.monotonic() + timeout
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            replica.inflight += 1
            try:
                pending = channel_of(replica, config.max_batch_size).infer(rows, options)
                result = await watched(self.nodes, replica, pending, remaining)
                return result, replica
            except ReplicaLost as exc:
                self.mark_failed(replica, exc)
                lost[replica.replica_id] = f"{replica.replica_id} on {replica.node}: {exc}"
                prefer = None
            finally:
                replica.inflight -= 1

    def check_lost(self, service: Service) -> None:
        """Mark running replicas whose worker is gone as failed (found without waiting for a
        request to reach them)."""
        for replica in service.replicas:
            if replica.live:
                loss = gone(self.nodes, replica)
                if loss is not None:
                    self.mark_failed(replica, loss)

    def mark_failed(self, replica: Replica, exc: BaseException | str) -> None:
        """A replica's worker was lost: `failed`, down from now (the keeper loads it again)."""
        if replica.status in ("running", "loading", "stopping"):
            log.warning("gswarm: replica %s on %s failed: %s",
                        replica.replica_id, replica.node, exc)
            replica.status, replica.error = "failed", f"worker lost: {exc}"
            replica.down_since, replica.attempts, replica.next_try = time.monotonic(), 0, 0.0
            with contextlib.suppress(NotFound):
                self._announce(self.service_of(replica).model.name)
