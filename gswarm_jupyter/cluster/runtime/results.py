"""Finished Dask futures' values, fetched in batches: one gather per turn of the event loop.

Awaiting a Dask future costs a round trip of its own once the scheduler reported it done (client ->
scheduler `gather` -> the worker's `get_data` and back, four messages over TLS). `Results.get`
instead waits for the report alone (it arrives on the client's stream: no message), answers an
error or a cancellation from what the client already holds, and puts a finished future in the
batch gathered at the next loop turn: every value reported in the same scheduler message (one per
few ms), and every value reported while a gather is on its way, travels in the next gather
(one in flight at a time). A gather that fails is retried future by future, so each caller
sees exactly what awaiting its own future raises.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from distributed import Client, Future


class Results:
    """Gathers the values of the futures awaited through `get`, together."""

    def __init__(self) -> None:
        self._batch: list[tuple[Future, asyncio.Future[Any]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def get(self, future: Future) -> Any:
        """`future`'s value, or what awaiting it raises."""
        await _reported(future)
        if future.status != "finished":  # error, cancelled, lost: known here, no message
            return await future
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._batch.append((future, waiter))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send(), name="gswarm-results")
        return await waiter

    async def _send(self) -> None:
        """One gather in flight: what is reported meanwhile waits and goes in the next one."""
        try:
            while self._batch:
                await asyncio.sleep(0)  # the other reports of this turn join the batch
                batch, self._batch = self._batch, []
                by_client: dict[Client, list[tuple[Future, asyncio.Future[Any]]]] = (
                    defaultdict(list))
                for future, waiter in batch:
                    if not waiter.done():  # its caller gave up waiting
                        by_client[future.client].append((future, waiter))
                await asyncio.gather(*(_fetch(c, part) for c, part in by_client.items()))
        finally:
            self._sender = None


async def _reported(future: Future) -> None:
    """Until the scheduler's report of `future` (done, failed, cancelled) reached the client:
    `distributed.wait`'s own wait, without its default-client lookup."""
    await future._state.wait()


async def _fetch(client: Client, batch: list[tuple[Future, asyncio.Future[Any]]]) -> None:
    try:
        values = await client.gather([future for future, _ in batch])
    except Exception:  # noqa: BLE001 (each on its own: each caller sees its own failure)
        await asyncio.gather(*(_one(future, waiter) for future, waiter in batch))
        return
    for (_, waiter), value in zip(batch, values, strict=True):
        if not waiter.done():
            waiter.set_result(value)


async def _one(future: Future, waiter: asyncio.Future[Any]) -> None:
    try:
        value = await future
    except Exception as exc:  # noqa: BLE001 (handed to the caller, who raises it)
        if not waiter.done():
            waiter.set_exception(exc)
    else:
        if not waiter.done():
            waiter.set_result(value)
