"""core.heap.settle: garbage present is collected, what is live leaves the collector's passes."""

from __future__ import annotations

import gc
import weakref


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_settle_collects_garbage_then_freezes_the_live_heap() -> None:
    from gswarm_jupyter.core.heap import settle

    gc.unfreeze()
    try:
        garbage = _Node()
        garbage.other = _Node()
        garbage.other.other = garbage  # a cycle: only the collector frees it
        dead = weakref.ref(garbage)
        del garbage
        live = [_Node()]
        frozen = settle()
        assert dead() is None
        assert frozen == gc.get_freeze_count() > 0
        assert not any(o is live for o in gc.get_objects())  # out of every generation
    finally:
        gc.unfreeze()
