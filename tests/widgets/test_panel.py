"""What every panel shares (`LivePanel`): displaying starts its refresh, closing stops it."""

from __future__ import annotations

import html
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


@pytest.mark.parametrize("panel_class", [ClusterPanel, TaskPanel, ModelPanel, ProfilerPanel])
def test_an_error_stays_until_the_next_action_and_a_refresh_problem_until_a_good_refresh(
        live_env, panel_class):
    from gswarm_jupyter.core.errors import NotFound, ResourceUnavailable

    with GswarmClient() as client:
        panel = panel_class(client, interval=60)
        try:
            panel.show_error(NotFound("unknown node 'node9'"))
            assert "NOT_FOUND: unknown node 'node9'" in html.unescape(panel.error.value)
            assert panel.dismiss.layout.visibility == "visible"
            panel.refresh()
            panel.refresh()
            assert "node9" in panel.error.value  # refreshes never wipe an action's error
            panel.dismiss.click()
            assert panel.error.value == "" and panel.dismiss.layout.visibility == "hidden"

            panel.show_error("refused")
            assert panel.act(lambda: 42) == 42 and panel.error.value == ""  # the next action

            panel.refresh_failed(ResourceUnavailable("server restarting"))
            assert "server restarting" in panel.problem.value
            panel.refresh()
            assert panel.problem.value == ""
        finally:
            panel.close()
