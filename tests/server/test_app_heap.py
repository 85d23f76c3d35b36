"""The server settles its heap once its extension has started (core.heap): the objects start-up
built are out of the collector's full passes, and handed back when it stops."""

from __future__ import annotations

import gc

import pytest


@pytest.fixture
def unfrozen(monkeypatch):
    monkeypatch.setenv("GSWARM_FREEZE_HEAP", "1")  # the suite turns it off (tests/conftest.py)
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_server_freezes_its_start_up_heap_and_releases_it_at_stop(
    unfrozen, gswarm_app, jp_asyncio_loop
) -> None:
    assert gswarm_app.context is not None
    assert gc.get_freeze_count() > 10_000  # modules, the app, the Dask client and workers
    jp_asyncio_loop.run_until_complete(gswarm_app.stop_extension())
    assert gc.get_freeze_count() == 0  # its state, garbage now, is collectable
