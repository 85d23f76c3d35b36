"""Task queue routes and the `/ws/tasks` stream: thin adapters over `TaskExecutor`."""

from __future__ import annotations

from typing import Any

from ...core.queue_api import HistoryQuery, QueueStatus, TaskList, TaskListQuery, TaskRecord
from ...core.tasks import PRIORITIES, Task
from ...core.taskstore import parse_since
from ..base import GswarmHandler
from ..routes import CONTROL, Op, Route
from ..websocket import GswarmSocket, socket_op


class QueueHandler(GswarmHandler):
    auth_resource = "gswarm:queue"

    def get(self) -> None:
        queue = self.gswarm.tasks.queue
        self.reply(
            {
                **queue.counts(),
                "config": {
                    "max_concurrent_tasks": queue.max_concurrent,
                    "priority_levels": list(PRIORITIES),
                    "resource_tracking": True,
                },
            }
        )


class TasksHandler(GswarmHandler):
    auth_resource = "gswarm:queue"

    def get(self) -> None:
        q = self.query(TaskListQuery)
        tasks = self.gswarm.tasks.queue.tasks(status=q.status, task_type=q.type)
        newest = list(reversed(tasks))[: q.limit]
        self.reply({"tasks": [t.record() for t in newest], "total": len(tasks)})


class TaskHandler(GswarmHandler):
    auth_resource = "gswarm:queue"

    def get(self, task_id: str) -> None:
        self.reply(self.gswarm.tasks.queue.get(task_id).record())


class CancelHandler(GswarmHandler):
    auth_resource = "gswarm:queue"

    async def post(self, task_id: str) -> None:
        task = await self.gswarm.tasks.cancel(task_id)
        self.reply(task.record())


class HistoryHandler(GswarmHandler):
    auth_resource = "gswarm:queue"

    async def get(self) -> None:
        q = self.query(HistoryQuery)
        since = None if q.since is None else parse_since(q.since)
        tasks = await self.gswarm.tasks.history(limit=q.limit, since=since, status=q.status)
        self.reply({"tasks": [t.record() for t in tasks], "total": len(tasks)})


class TasksSocket(GswarmSocket):
    """Every task change as `{"event": "task", "data": <task record>}`."""

    auth_resource = "gswarm:queue"

    def open(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().open(*args, **kwargs)
        self.gswarm.tasks.queue.listeners.add(self._on_task)

    def on_close(self) -> None:
        self.gswarm.tasks.queue.listeners.discard(self._on_task)

    def _on_task(self, task: Task) -> None:
        if not self.send_event("task", task.record()):
            self.on_close()


routes = [
    Route(
        f"{CONTROL}/queue",
        QueueHandler,
        {"get": Op("Task counts by status and the queue's configuration", QueueStatus)},
        tag="queue",
    ),
    Route(
        f"{CONTROL}/queue/tasks",
        TasksHandler,
        {"get": Op("Tasks of every status, newest first", TaskList, query=TaskListQuery,
                   errors=(400,))},
        tag="queue",
    ),
    Route(
        f"{CONTROL}/queue/tasks/{{task_id}}",
        TaskHandler,
        {"get": Op("One task", TaskRecord, errors=(404,))},
        tag="queue",
    ),
    Route(
        f"{CONTROL}/queue/tasks/{{task_id}}/cancel",
        CancelHandler,
        {"post": Op("Cancel a pending or running task (running work stops and cleans up)",
                    TaskRecord, errors=(404, 409))},
        tag="queue",
    ),
    Route(
        f"{CONTROL}/queue/history",
        HistoryHandler,
        {"get": Op("Finished tasks, most recently finished first", TaskList, query=HistoryQuery,
                   errors=(400,))},
        tag="queue",
    ),
    Route(
        f"{CONTROL}/ws/tasks",
        TasksSocket,
        {"get": socket_op(
            "WebSocket: {event: task, data: <task record>, timestamp} on every change")},
        tag="queue",
    ),
]
