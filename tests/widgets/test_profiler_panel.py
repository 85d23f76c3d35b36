"""`ProfilerPanel`: rolling charts from the latest frames, pause, session buttons, closing."""

from __future__ import annotations

import time
import uuid

import pytest

from gswarm_jupyter.client import GswarmClient
from gswarm_jupyter.testing import free_port
from gswarm_jupyter.widgets import ProfilerPanel


@pytest.fixture
def panel(live_env):
    p = ProfilerPanel(interval=60)
    yield p
    p.close()


def _lengths(panel: ProfilerPanel) -> dict:
    return {key: len(points) for key, points in panel.series.items()}


def _wait_for_a_new_frame(panel: ProfilerPanel, node: str = "node1", timeout: float = 15) -> None:
    """Until the server holds a frame of `node` the panel has not seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = next(f for f in panel.client.profiler.latest(nodes=[node]))
        if (frame["instance"], frame["seq"]) != panel.seen[node]:
            return
        time.sleep(0.1)
    raise AssertionError(f"no new frame of {node} within {timeout} s")


def test_a_refresh_fills_a_window_per_node_device_and_metric(panel):
    assert panel.error.value == ""
    assert {("node1", "host"), ("node2", "host")} <= set(panel.charts)
    for node in ("node1", "node2"):
        assert len(panel.series[(node, "host", "cpu_utilization_ratio")]) == 1
        ((_, ratio),) = panel.series[(node, "host", "memory_ratio")]
        assert 0.0 < ratio < 1.0
    assert bytes(panel.chart.value).startswith(b"\x89PNG")
    assert "samplers" in panel.header.value

    _wait_for_a_new_frame(panel)
    panel.refresh()
    assert len(panel.series[("node1", "host", "cpu_utilization_ratio")]) == 2


def test_the_window_keeps_only_the_newest_points(live_env):
    panel = ProfilerPanel(interval=60, window=2)
    try:
        for _ in range(3):
            _wait_for_a_new_frame(panel)
            panel.refresh()
        points = panel.series[("node1", "host", "cpu_utilization_ratio")]
        assert len(points) == 2 and points[0][0] < points[1][0]
    finally:
        panel.close()


def test_pause_stops_updates_and_resume_takes_them_again(panel):
    panel.pause_button.value = True
    assert panel.paused and panel.pause_button.description == "Resume"
    before, chart = _lengths(panel), panel.chart.value
    _wait_for_a_new_frame(panel)
    panel.refresh()
    assert _lengths(panel) == before and panel.chart.value == chart

    panel.resume()
    assert not panel.paused and panel.pause_button.description == "Pause"
    panel.refresh()
    key = ("node1", "host", "cpu_utilization_ratio")
    assert len(panel.series[key]) == before[key] + 1 and panel.chart.value != chart


def test_the_buttons_start_and_stop_the_named_session(panel):
    name = f"panel-{uuid.uuid4().hex[:8]}"
    client = panel.client
    panel.name.value = name
    panel.every.value = 50
    panel.start_button.click()
    assert panel.error.value == ""
    assert f"recording <b>{name}</b> every 50 ms" in panel.message.value
    record = {s["name"]: s for s in client.profiler.sessions()}[name]
    assert record["status"] == "running" and record["sampling_frequency_ms"] == 50

    panel.start_button.click()  # the same name again: the server's 409, shown
    assert "CONFLICT" in panel.error.value

    panel.stop_button.click()
    assert panel.error.value == "" and f"<b>{name}</b> stopped" in panel.message.value
    assert client.profiler.session(name)["status"] == "finished"
    panel.name.value = ""
    panel.stop_button.click()
    assert "give the session a name" in panel.error.value


def test_an_unreachable_server_is_shown_not_raised():
    panel = ProfilerPanel(GswarmClient(f"http://127.0.0.1:{free_port()}/", "t"), interval=60)
    assert "NETWORK_ERROR" in panel.error.value
    assert panel.series == {}
    panel.name.value = "x"
    assert panel.start_session() is None and "NETWORK_ERROR" in panel.error.value
    panel.close()
