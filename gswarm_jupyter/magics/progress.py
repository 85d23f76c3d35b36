"""Waiting for a task with a `tqdm.auto` progress bar: shared by `%gswarm wait` and the commands
that start tasks (`register`, `move`, `copy`)."""

from __future__ import annotations

from typing import Any

BAR_FORMAT = "{l_bar}{bar}| {n:.0f}/100% {postfix}"


def wait_with_bar(client: Any, task_id: str, timeout: float | None = None, poll: float = 0.2,
                  desc: str | None = None) -> dict[str, Any]:
    """Block until the task ends, drawing its progress (0..100) and status; answer its record.
    An unknown task fails before a bar is drawn; the bar is closed however the wait ends."""
    from tqdm.auto import tqdm

    client.tasks.get(task_id)
    bar = tqdm(total=100, desc=desc or task_id, bar_format=BAR_FORMAT)

    def progress(task: dict[str, Any]) -> None:
        bar.set_postfix_str(task["status"], refresh=False)
        bar.update(task["progress"] - bar.n)

    try:
        return client.tasks.wait(task_id, timeout=timeout, poll=poll, progress=progress)
    finally:
        bar.close()
