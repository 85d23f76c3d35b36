"""The worker process's compute thread (`runtime.compute`): calls one after another run on one
thread, whichever thread asks, in the caller's context; a call made while it is busy runs at once
on its caller's thread (never waits); a cancelled task never runs; errors reach the caller."""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from gswarm_jupyter.cluster.runtime import compute
from gswarm_jupyter.cluster.runtime.signals import TaskCancelled, TaskSignal, flag_cancelled

_seen: contextvars.ContextVar[str] = contextvars.ContextVar("_seen")


def test_calls_one_after_another_from_several_threads_run_on_one_thread_in_their_context() -> None:
    def ask(i: int) -> tuple[int, int, str]:
        _seen.set(f"caller {i}")
        ran_on, seen = compute.run(TaskSignal(f"t{i}"), lambda: (threading.get_ident(),
                                                               _seen.get()))
        return threading.get_ident(), ran_on, seen

    answers: list[tuple[int, int, str]] = []
    for i in range(8):  # a new thread each time, one after another
        caller = threading.Thread(target=lambda i=i: answers.append(ask(i)))
        caller.start()
        caller.join(30)
    assert [seen for _, _, seen in answers] == [f"caller {i}" for i in range(8)]
    ran_on = {r for _, r, _ in answers}
    assert len(ran_on) == 1 and not ran_on & {c for c, _, _ in answers}


def test_a_call_made_while_the_thread_is_busy_runs_at_once_on_its_callers_thread() -> None:
    hold, holding = threading.Event(), threading.Event()

    def busy() -> int:
        holding.set()
        assert hold.wait(30)
        return threading.get_ident()

    with ThreadPoolExecutor(1) as other:
        first = other.submit(compute.run, TaskSignal("busy"), busy)
        assert holding.wait(30)
        try:
            assert compute.run(TaskSignal("second"), threading.get_ident) == threading.get_ident()
        finally:
            hold.set()
        assert first.result(30) != threading.get_ident()


def test_a_cancelled_task_never_runs() -> None:
    signal, ran = TaskSignal("cancelled-before-it-ran"), []
    flag_cancelled(signal.task_id)
    try:
        with pytest.raises(TaskCancelled):
            compute.run(signal, ran.append, 1)
    finally:
        signal.done()
    assert ran == []


def test_errors_reach_the_caller() -> None:
    with pytest.raises(ValueError, match="bad rows"):
        compute.run(TaskSignal("err"), lambda: (_ for _ in ()).throw(ValueError("bad rows")))
