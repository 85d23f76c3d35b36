"""The worker process's compute thread (`runtime.compute`): every call runs on one thread,
whichever thread asks, in the caller's context; a call cancelled while it waits behind another
never runs; errors reach the caller."""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from gswarm_jupyter.cluster.runtime import compute
from gswarm_jupyter.cluster.runtime.signals import TaskCancelled, TaskSignal, flag_cancelled

_seen: contextvars.ContextVar[str] = contextvars.ContextVar("_seen")


def test_calls_from_several_threads_run_on_one_thread_in_the_callers_context() -> None:
    def ask(i: int) -> tuple[int, int, str]:
        _seen.set(f"caller {i}")
        ran_on, seen = compute.run(TaskSignal(f"t{i}"), lambda: (threading.get_ident(),
                                                               _seen.get()))
        return threading.get_ident(), ran_on, seen

    with ThreadPoolExecutor(4) as callers:
        answers = list(callers.map(ask, range(8)))
    assert {seen for _, _, seen in answers} == {f"caller {i}" for i in range(8)}
    ran_on = {r for _, r, _ in answers}
    assert len(ran_on) == 1 and not ran_on & {c for c, _, _ in answers}


def test_a_call_cancelled_while_it_waits_never_runs() -> None:
    hold, holding, ran = threading.Event(), threading.Event(), []

    def busy() -> None:
        holding.set()
        assert hold.wait(30)

    with ThreadPoolExecutor(1) as other:
        first = other.submit(compute.run, TaskSignal("busy"), busy)
        assert holding.wait(30)
        signal = TaskSignal("queued-then-cancelled")
        timer = threading.Timer(0.3, flag_cancelled, (signal.task_id,))
        timer.start()
        try:
            with pytest.raises(TaskCancelled):
                compute.run(signal, ran.append, 1)
        finally:
            hold.set()
            timer.join()
            signal.done()
        first.result(30)
    assert ran == []


def test_errors_reach_the_caller() -> None:
    with pytest.raises(ValueError, match="bad rows"):
        compute.run(TaskSignal("err"), lambda: (_ for _ in ()).throw(ValueError("bad rows")))
