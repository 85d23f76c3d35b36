"""The gateway's own line to one replica's `ServiceActor`, and the batches formed on it.

A call goes straight to the replica's worker over a Dask comm pooled in this process
(`Client.rpc`: opened once, then kept), where a Dask actor's call from a client goes through the
scheduler. A channel that has never reached its worker directly and cannot (a worker that only
its scheduler reaches) goes through the scheduler from then on, as the actor's own calls do. A
replica on the gateway's own host is sent its inference messages over its lane (`lane.py`: a
Unix socket, no TLS or Dask framing) while the lane opens; a lane that cannot be opened is given
up for the Dask comm. Inference requests reach the replica batched where they arrive: a request queues on
its replica's channel; a message (`ServiceActor.infer_many`) leaves with every request queued as
soon as the event loop has taken in what arrived, while fewer than `IN_FLIGHT` messages are on
their way; otherwise the requests wait for the next message. A lone request waits for nothing.
A message holds at most `batch_rows` rows (the replica's batch limit; a longer request goes
alone): one forward pass each, so its answers come back when that pass ends, not after the
passes of the requests queued behind it, while the next message is already at the replica.

Invariant: every request queued gets exactly one outcome, its own: its answer, the error it
raised on the worker, or the failure of the message that carried it. A request given up by its
caller (timeout, lost replica) is dropped unsent, or its answer is. The channel knows nothing of
replica states, balancing or retries (the gateway's).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from distributed import get_client
from distributed.actor import ProxyRPC
from distributed.protocol.serialize import ToPickle

from .lane import SERVED, LaneClient, LaneUnreachable, host_id

IN_FLIGHT = 2  # messages on their way at once: the next batch is there when a forward ends
MAX_REQUESTS = 256  # requests in one message


class ReplicaChannel:
    """Calls to the actor `key` on the worker at `address`, through `rpc` (a pooled call)."""

    def __init__(self, rpc: Any, key: str, address: str, relayed: Any = None,
                 batch_rows: int | None = None, lane: LaneClient | None = None) -> None:
        self._rpc = rpc
        self._lane = lane  # the same host's lane, for the methods it serves
        self._relayed = relayed  # the same calls relayed by the scheduler
        self._reached = False  # a direct call was answered once
        self.key = key
        self.address = address
        self.batch_rows = batch_rows or MAX_REQUESTS
        self._queue: deque[tuple[Any, Any, asyncio.Future[Any]]] = deque()
        self._in_flight = 0
        self._flush_due = False
        self._sending: set[asyncio.Task[None]] = set()  # held: the loop keeps weak references

    async def call(self, method: str, *args: Any) -> Any:
        """`method(*args)` of the actor, on its worker; its exception raised here."""
        if self._lane is not None and method in SERVED:
            try:
                return await self._lane.call(method, *args)
            except LaneUnreachable:
                self._lane = None  # nothing was sent: the Dask comm from now on
        # Pickled inline in the message's frame: a third of the time Dask's `to_serialize`
        # framing takes for one request's rows each way (measured), the same objects arrive.
        message = {"function": method, "actor": self.key,
                   "args": [ToPickle(a) for a in args], "kwargs": {}}
        try:
            reply = await self._rpc.actor_execute(**message)
        except OSError:
            if self._reached or self._relayed is None:
                raise
            self._rpc, self._relayed = self._relayed, None  # unreachable directly: relayed
            reply = await self._rpc.actor_execute(**message)
        self._reached = True
        if reply["status"] == "OK":
            return reply["result"]
        raise reply["exception"]

    def infer(self, rows: Any, options: dict[str, Any]) -> asyncio.Future[Any]:
        """Queue one request; its future answers what `ServiceActor.infer` answers for it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((rows, options, future))
        if not self._flush_due and self._in_flight < IN_FLIGHT:
            self._flush_due = True
            loop.call_soon(self._flush)
        return future

    @property
    def queued(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        """Hang up the lane, if one is open (calls still on it fail as on a closed lane)."""
        if self._lane is not None:
            self._lane.close()

    def _flush(self) -> None:
        self._flush_due = False
        while self._queue and self._in_flight < IN_FLIGHT:
            batch, rows = [], 0
            while self._queue and len(batch) < MAX_REQUESTS:
                item = self._queue[0]
                if item[2].done():  # given up while it waited
                    self._queue.popleft()
                    continue
                rows += _rows(item[0])
                if batch and rows > self.batch_rows:
                    break
                batch.append(self._queue.popleft())
            if batch:
                self._in_flight += 1
                task = asyncio.ensure_future(self._send(batch))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[Any, Any, asyncio.Future[Any]]]) -> None:
        try:
            outcomes = await self.call("infer_many", [(rows, options) for rows, options, _ in batch])
        except BaseException as exc:  # the message failed: every request in it learns why
            for _, _, future in batch:
                if future.done():
                    continue
                if isinstance(exc, Exception):
                    future.set_exception(exc)
                else:
                    future.cancel()
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, _, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
        finally:
            self._in_flight -= 1
            if self._queue and not self._flush_due:
                self._flush_due = True
                asyncio.get_running_loop().call_soon(self._flush)


def _rows(rows: Any) -> int:
    """How many rows a request's input holds (a lone string or value is one)."""
    return len(rows) if isinstance(rows, list | tuple) else 1


def channel_to(actor: Any, address: str, batch_rows: int | None = None,
               lane: dict[str, str] | None = None) -> ReplicaChannel:
    """A channel to `actor` (a Dask `Actor` handle) on its worker at `address`, over the pooled
    comms of the client that holds the actor, and over `lane` (what the actor's `start`
    answered) when it is on this host; its messages hold at most `batch_rows` rows."""
    client = getattr(actor, "_client", None) or get_client()
    near = lane is not None and lane.get("host") == host_id()
    return ReplicaChannel(client.rpc(address), actor.key, address,
                          relayed=ProxyRPC(client.scheduler, address), batch_rows=batch_rows,
                          lane=LaneClient(lane["name"]) if near else None)
