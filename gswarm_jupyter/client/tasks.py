"""`client.tasks`: the task queue, with a blocking or awaitable `wait`."""

from __future__ import annotations

from typing import Any

from ..core.errors import RequestTimeout

from .parts import CONTROL, FINISHED, _Part, _clean


class TasksApi(_Part):
    """The task queue. `wait` is the client's own (blocking or awaitable)."""

    def queue(self) -> Any:
        return self._call("GET", CONTROL + "queue")

    def list(self, status: str | None = None, type: str | None = None, limit: int | None = None) -> Any:
        params = _clean(status=status, type=type, limit=limit)
        return self._call("GET", CONTROL + "queue/tasks", params=params, key="tasks")

    def get(self, task_id: str) -> Any:
        return self._call("GET", CONTROL + f"queue/tasks/{task_id}")

    def cancel(self, task_id: str) -> Any:
        return self._call("POST", CONTROL + f"queue/tasks/{task_id}/cancel")

    def history(self, status: str | None = None, since: float | str | None = None,
                limit: int | None = None) -> Any:
        params = _clean(status=status, since=since, limit=limit)
        return self._call("GET", CONTROL + "queue/history", params=params, key="tasks")


class SyncTasksApi(TasksApi):
    def wait(self, task_id: str, timeout: float | None = None, poll: float = 0.2,
             progress: Any = None) -> Any:
        """Block until the task ends; answer its record. `progress(task)` sees each poll."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            task = self.get(task_id)
            if progress is not None:
                progress(task)
            if task["status"] in FINISHED:
                return task
            if deadline is not None and time.monotonic() > deadline:
                raise RequestTimeout(f"task {task_id} still {task['status']} after {timeout} s",
                                     {"task_id": task_id})
            time.sleep(poll)


class AsyncTasksApi(TasksApi):
    async def wait(self, task_id: str, timeout: float | None = None, poll: float = 0.2) -> Any:
        """Until the task ends; answer its record."""
        import asyncio

        async def ended() -> Any:
            while (task := await self.get(task_id))["status"] not in FINISHED:
                await asyncio.sleep(poll)
            return task

        try:
            return await asyncio.wait_for(ended(), timeout)
        except asyncio.TimeoutError:
            raise RequestTimeout(f"task {task_id} did not end within {timeout} s",
                                 {"task_id": task_id}) from None

    async def events(self) -> Any:
        """Every task change as it happens: an async iterator over `/ws/tasks` events."""
        async for event in self._client._events("tasks"):  # type: ignore[attr-defined]
            yield event
