"""What every panel shares (`LivePanel`): displaying starts its refresh, closing stops it."""

from __future__ import annotations

import time

import pytest

from gswarm_jupyter.client import GswarmClient
from gswarm_jupyter.widgets import ClusterPanel, ModelPanel, ProfilerPanel, TaskPanel


@pytest.mark.parametrize("panel_class", [ClusterPanel, TaskPanel, ModelPanel, ProfilerPanel])
def test_displaying_starts_the_refresh_and_closing_stops_it(live_env, panel_class):
    with GswarmClient() as client:
        panel = panel_class(client, interval=0.1)
        ticks = []
        original = panel.refresh
        panel.refresher.tick = lambda: (ticks.append(1), original())
        assert not panel.refresher.running
        panel._repr_mimebundle_()
        deadline = time.time() + 10
        while len(ticks) < 2 and time.time() < deadline:
            time.sleep(0.05)
        assert len(ticks) >= 2
        panel.close()
        assert not panel.refresher.running
        count = len(ticks)
        time.sleep(0.3)
        assert len(ticks) == count
