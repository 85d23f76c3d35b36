"""The server settles its heap once its extension has started (core.heap): the objects start-up
built are out of the collector's full passes."""

from __future__ import annotations

import gc

import pytest


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_started_server_has_frozen_its_start_up_heap(unfrozen, gswarm_app) -> None:
    assert gswarm_app.context is not None
    assert gc.get_freeze_count() > 10_000  # modules, the app, the Dask client and workers
