"""Waiting on a call that may lose its worker: the one loop for Dask futures and actor calls.

`watch(call, gone)` awaits `call` while asking `gone()` every `WATCH_INTERVAL` seconds whether
the worker it runs on is still there. It never waits on a worker that no longer exists: when
`gone()` names a loss, or the call fails the way a lost worker makes it fail, it raises
`WorkerLost`; a worker op's `WorkerOpError` comes back as the API error it stands for
(`signals.api_error`); any other failure of the call is raised as it is. `moved(nodes, node,
address)` is the one test of whether a call's worker is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ...core.errors import GswarmError
from ...core.nodes import NodeDirectory
from .signals import WorkerOpError, api_error

WATCH_INTERVAL = 0.25  # how often a waiting call checks that its worker is still there

# How distributed fails a call whose worker (or the way to it) went away.
_LOSS_NAMES = ("KilledWorker", "CommClosedError", "FutureCancelledError")


class WorkerLost(Exception):
    """The worker a watched call ran on is gone (`found`: seen gone, not from the call's error)."""

    def __init__(self, message: str, *, found: bool) -> None:
        super().__init__(message)
        self.found = found


class WatchTimeout(Exception):
    """The watched call gave no answer within its timeout."""


def moved(nodes: NodeDirectory, node: str, address: str) -> bool:
    """Whether the worker of `node` at `address` is gone: the node unknown, offline, or back
    under another address (a new worker process)."""
    try:
        current = nodes.get(node)
    except GswarmError:
        return True
    return not current.online or current.address != address


def is_loss(exc: BaseException) -> bool:
    """Whether a call's failure means its worker, or the way to it, is gone."""
    return (
        isinstance(exc, OSError)
        or type(exc).__name__ in _LOSS_NAMES
        or "Actor was lost" in str(exc)  # distributed's RuntimeError for a dead actor holder
    )


async def watch(
    call: Awaitable[Any], gone: Callable[[], str | None], timeout: float | None = None
) -> Any:
    """`call`'s result; `WorkerLost` when `gone()` names a loss or the call fails as a lost
    worker's call does, `WatchTimeout` after `timeout` s, a worker op's error as the API's."""
    # an asyncio future (a replica channel's answer) is waited on as it is: no task of its own
    waiter = call if isinstance(call, asyncio.Future) else asyncio.ensure_future(_awaited(call))
    started = time.monotonic()
    try:
        while True:
            step = WATCH_INTERVAL
            if timeout is not None:
                step = min(step, max(0.0, timeout - (time.monotonic() - started)))
            done, _ = await asyncio.wait({waiter}, timeout=step)
            if done:
                break
            loss = gone()
            if loss is not None:
                raise WorkerLost(loss, found=True)
            if timeout is not None and time.monotonic() - started >= timeout:
                raise WatchTimeout(f"no answer within {timeout:g} s")
    finally:
        if not waiter.done():
            waiter.cancel()
            with contextlib.suppress(BaseException):
                await waiter
    try:
        return waiter.result()
    except WorkerOpError as exc:
        raise api_error(exc) from None
    except Exception as exc:
        if is_loss(exc):
            raise WorkerLost(f"{type(exc).__name__}: {exc}", found=False) from None
        raise


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
