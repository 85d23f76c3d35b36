"""Dynamic batching in front of one runner.

Requests queue as pieces of at most `max_batch_size` rows (a longer request is split, not
refused). The loop takes the oldest piece, waits at most `batch_timeout_ms` for compatible pieces
to fill the batch up to `max_batch_size` rows, runs them in one forward pass on its own thread,
and hands each piece its rows back. Pieces are compatible when one pass can serve them alike: any
float rows; any token rows of an encoder (the runner pads the batch to its longest row and masks
the padding, so a row answers as it would alone); greedy generations of the same length. A
sampled generation runs alone (its seed's tokens must not depend on whose rows shared its batch).
`turn`, when given, is entered around every forward pass (on the compute thread): the fair queue
that shares one device among the services on its virtual GPUs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.errors import ResourceUnavailable
from ..core.stats import percentile
from .base import GenerateOptions, Runner

LATENCY_SAMPLES = 1024


@dataclass(slots=True, eq=False)
class _Piece:
    rows: list[np.ndarray]
    options: GenerateOptions
    key: Hashable
    future: asyncio.Future[list[list[Any]]]
    queued: float  # the event loop's time when it was queued


@dataclass(slots=True)
class Served:
    """One request's answer."""

    rows: list[list[Any]]
    tokens_generated: int
    latency: float  # seconds from queueing to the last piece's answer
    texts: list[str] | None = None  # generated rows decoded, for models with a tokenizer


class Batcher:
    """Feeds one runner from a queue; counts what it served."""

    def __init__(
        self,
        runner: Runner,
        max_batch_size: int = 32,
        batch_timeout_ms: float = 2.0,
        turn: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.runner = runner
        self._turn = turn or contextlib.nullcontext
        self.max_batch_size = max_batch_size
        self.batch_timeout = max(0.0, batch_timeout_ms) / 1000.0
        self.requests_served = 0
        self.requests_failed = 0
        self.rows_served = 0
        self.batch_histogram: Counter[int] = Counter()
        self.latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._pending: deque[_Piece] = deque()
        self._waiter: asyncio.Future[None] | None = None  # the loop's, while it waits
        self._idle = asyncio.Event()
        self._idle.set()
        self._active = 0  # requests accepted and not answered
        self._computing = 0  # batches handed to the compute thread and not answered
        self._closing = False
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="gswarm-batch")
        self._loop_task: asyncio.Task[None] | None = None
        self._sampled = itertools.count()

    # -- the way in ---------------------------------------------------------------------------

    async def submit(self, rows: Any, options: GenerateOptions | None = None) -> Served:
        """Check, queue and await one request's rows (`InvalidInputData` before queueing)."""
        if self._closing:
            raise ResourceUnavailable("the service is stopping")
        options = options or GenerateOptions()
        try:
            checked = self.runner.check(rows, options)
        except Exception:
            self.requests_failed += 1
            raise
        started = time.perf_counter()
        self._ensure_loop()
        self._active += 1
        self._idle.clear()
        try:
            key = self._key(options)
            loop = asyncio.get_running_loop()
            now = loop.time()
            pieces = [
                _Piece(checked[i : i + self.max_batch_size], options, key, loop.create_future(),
                       now)
                for i in range(0, len(checked), self.max_batch_size)
            ]
            self._pending.extend(pieces)
            self._wake()
            if len(pieces) == 1:  # awaited as it is: no gathering future in between
                outputs = [await pieces[0].future]
            else:
                outputs = await asyncio.gather(*(p.future for p in pieces))
        except BaseException:
            self.requests_failed += 1
            raise
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()
        latency = time.perf_counter() - started
        rows_out = [row for piece in outputs for row in piece]
        self.requests_served += 1
        self.rows_served += len(rows_out)
        self.latencies.append(latency)
        tokens = sum(len(r) for r in rows_out) if self.runner.generates else 0
        texts = self.runner.decode(rows_out) if self.runner.generates else None
        return Served(rows_out, tokens, latency, texts)

    def _key(self, options: GenerateOptions) -> Hashable:
        if not self.runner.generates:
            return "rows"
        if options.temperature == 0:
            return ("greedy", options.max_tokens)
        return ("sampled", next(self._sampled))

    async def replace_runner(self, build: Callable[[], Runner]) -> None:
        """Switch to the runner `build()` makes, between batches: it is built on the compute
        thread (after the batch running now), later batches go to it, and the old runner is
        closed once the batches already handed to it are done. No request is dropped."""
        loop = asyncio.get_running_loop()
        new = await loop.run_in_executor(self._pool, build)
        old, self.runner = self.runner, new
        await loop.run_in_executor(self._pool, old.close)

    # -- state --------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters: requests served and failed, queue depth, p50/p99 latency, batch sizes."""
        return {
            "requests_served": self.requests_served,
            "requests_failed": self.requests_failed,
            "rows_served": self.rows_served,
            "queue_depth": self.queue_depth,
            "active_requests": self._active,
            "latency_p50": percentile(self.latencies, 50),
            "latency_p99": percentile(self.latencies, 99),
            "batch_size_histogram": {str(k): v for k, v in sorted(self.batch_histogram.items())},
            "max_batch_size": self.max_batch_size,
            "batch_timeout_ms": self.batch_timeout * 1000.0,
        }

    @property
    def queue_depth(self) -> int:
        """Rows waiting for a batch."""
        return sum(len(p.rows) for p in self._pending)

    @property
    def active_requests(self) -> int:
        return self._active

    async def drain(self) -> None:
        """Refuse new requests and wait until every accepted one was answered."""
        self._closing = True
        await self._idle.wait()

    def close(self) -> None:
        """Stop the loop and the compute thread (after `drain`)."""
        self._closing = True
        if self._loop_task is not None:
            self._loop_task.cancel()
        for piece in self._pending:
            if not piece.future.done():
                piece.future.set_exception(ResourceUnavailable("the service stopped"))
        self._pending.clear()
        self._pool.shutdown(wait=False)

    # -- the loop -----------------------------------------------------------------------------

    def _ensure_loop(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._run(), name="gswarm-batcher")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            rows = [row for piece in batch for row in piece.rows]
            self.batch_histogram[len(rows)] += 1
            self._computing += 1
            self._pool.submit(self._compute, loop, rows, batch)

    def _compute(self, loop: asyncio.AbstractEventLoop, rows: list[np.ndarray],
                 batch: list[_Piece]) -> None:
        """On the compute thread: the forward pass, then its outcome handed to the loop in one
        call (no executor future whose state is copied over and whose callbacks run a turn
        later)."""
        outputs, exc = None, None
        try:
            outputs = self._forward(rows, batch[0].options)
        except BaseException as error:  # noqa: BLE001 - the batch learns why, as through a future
            exc = error
        try:
            loop.call_soon_threadsafe(self._answer, batch, outputs, exc)
        except RuntimeError:  # the loop is closed: nobody waits for these pieces any more
            pass

    def _answer(self, batch: list[_Piece], outputs: Any, exc: BaseException | None) -> None:
        """A forward pass ended: each piece gets its rows, or the whole batch learns why not."""
        self._computing -= 1
        self._wake()
        if exc is not None:
            for piece in batch:
                if not piece.future.done():
                    piece.future.set_exception(exc)
            return
        start = 0
        for piece in batch:
            if not piece.future.done():
                piece.future.set_result(outputs[start : start + len(piece.rows)])
            start += len(piece.rows)

    def _forward(self, rows: list[np.ndarray], options: GenerateOptions) -> Any:
        """One forward pass, on the compute thread, in the device's turn."""
        with self._turn():
            return self.runner.run(rows, options)

    async def _next_batch(self) -> list[_Piece]:
        """The next batch, once the compute thread is free, or it has a running batch only and
        the next one is full or has waited `batch_timeout`."""
        loop = asyncio.get_running_loop()
        while True:
            if self._pending and self._computing < 2:
                if self._computing == 0:
                    break
                batch, rows = self._compatible()
                remaining = self._pending[0].queued + self.batch_timeout - loop.time()
                if rows >= self.max_batch_size or remaining <= 0:
                    break
            else:
                remaining = None
            self._waiter = loop.create_future()
            timer = None if remaining is None else loop.call_later(remaining, self._wake)
            try:
                await self._waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        batch, _ = self._compatible()
        for piece in batch:
            self._pending.remove(piece)
        return batch

    def _wake(self) -> None:
        """Something changed (a piece queued, a forward ended, a wait ran out): look again."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _compatible(self) -> tuple[list[_Piece], int]:
        """The oldest piece and the later ones that fit with it, in queue order."""
        first = self._pending[0]
        batch, rows = [first], len(first.rows)
        for piece in itertools.islice(self._pending, 1, None):
            if piece.key == first.key and rows + len(piece.rows) <= self.max_batch_size:
                batch.append(piece)
                rows += len(piece.rows)
        return batch, rows
