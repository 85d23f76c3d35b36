"""What a worker holds for same-host copies in flight, by the server's token: held until
released, and a token released first is refused for good."""

from __future__ import annotations

from gswarm_jupyter.cluster.runtime import handoffs
from gswarm_jupyter.cluster.runtime.handoffs import Handoffs


def test_a_value_is_held_until_its_token_is_released():
    held: Handoffs[str] = Handoffs()
    assert held.hold("a", "bytes of a") and len(held) == 1
    assert held.release("a") == "bytes of a" and len(held) == 0
    assert held.release("a") is None


def test_a_token_released_before_its_hold_is_refused():
    held: Handoffs[str] = Handoffs()
    assert held.release("late") is None
    assert not held.hold("late", "bytes") and len(held) == 0


def test_only_the_last_released_tokens_are_remembered(monkeypatch):
    monkeypatch.setattr(handoffs, "REMEMBERED", 2)
    held: Handoffs[str] = Handoffs()
    for token in ("t1", "t2", "t3"):
        held.release(token)
    assert held.hold("t1", "x")  # forgotten: the oldest of three
    assert not held.hold("t2", "x") and not held.hold("t3", "x")
