"""Stopping background tasks for sure."""

from __future__ import annotations

import asyncio
import contextlib


async def cancel_and_wait(task: asyncio.Task[object] | None, step: float = 1.0) -> None:
    """Cancel `task` and wait until it has ended.

    Python 3.11's `wait_for` can swallow a cancel that arrives as its inner call completes; the
    task then carries on (to its next sleep, say). Cancelling again until it is done makes a
    stop certain without waiting on any one cancel.
    """
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=step)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
