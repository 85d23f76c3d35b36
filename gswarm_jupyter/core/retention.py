"""How long finished tasks are kept: at most `days` days after they finished, and only the
`max_tasks` latest of them, both in memory and in the database. Pending and running tasks are
never dropped. The database is pruned in bounded batches, yielding to the event loop between
them, once the changes noted for the database are written."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .taskstore import PRUNE_BATCH, TaskStore
from .tasks import TaskQueue

DAY = 86_400.0
SWEEP_INTERVAL = 600.0  # seconds between two sweeps while the server runs


@dataclass(frozen=True, slots=True)
class Retention:
    days: float = 7.0
    max_tasks: int = 10_000
    interval: float = SWEEP_INTERVAL

    def __post_init__(self) -> None:
        if not self.days > 0:
            raise ValueError("task_history_days must be positive")
        if self.max_tasks < 0:
            raise ValueError("task_history_max must be at least 0")
        if not self.interval > 0:
            raise ValueError("the retention sweep interval must be positive")

    def cutoff(self, now: float) -> float:
        """Tasks that finished before this moment are dropped."""
        return now - self.days * DAY


async def apply_retention(
    policy: Retention, queue: TaskQueue, store: TaskStore | None
) -> list[str]:
    """Drop what `policy` no longer keeps, from memory and the database; answers the task ids
    dropped from memory."""
    before = policy.cutoff(queue.clock())
    dropped = queue.prune(before, policy.max_tasks)
    if store is not None:
        await asyncio.to_thread(store.flush)  # the database knows every task that finished
        while store.prune(before, policy.max_tasks) >= PRUNE_BATCH:
            await asyncio.sleep(0)
    return dropped
