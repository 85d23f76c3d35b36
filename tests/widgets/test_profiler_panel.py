"""`ProfilerPanel`: live bqplot charts from the latest frames (new points only), units on the axes,
GPU charts per device when NVML reports, pause, session buttons, closing."""

from __future__ import annotations

import time
import uuid

import bqplot as bq
import pytest

from gswarm_jupyter.client import GswarmClient
from gswarm_jupyter.testing import free_port
from gswarm_jupyter.widgets import ProfilerPanel
from gswarm_jupyter.widgets.profiler import CHARTS, chart_points, chart_totals

HOST = {"cpu", "memory", "network", "disk"}


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


def test_host_charts_are_bqplot_figures_with_units_and_a_line_per_node(panel):
    assert panel.error.value == "" and panel.problem.value == ""
    assert set(panel.charts) == HOST  # no GPU here: no GPU chart
    for key, chart in panel.charts.items():
        assert isinstance(chart.figure, bq.Figure)
        x_axis, y_axis = chart.figure.axes
        assert isinstance(x_axis.scale, bq.DateScale) and x_axis.label == "time"
        assert y_axis.label
    units = {key: chart.figure.axes[1].label for key, chart in panel.charts.items()}
    assert units == {"cpu": "CPU (%)", "memory": "used (GiB)", "network": "bytes/s",
                     "disk": "bytes/s"}
    assert set(panel.charts["cpu"].lines) == {"node1", "node2"}
    assert set(panel.charts["network"].lines) == {"node1 rx", "node1 tx", "node2 rx", "node2 tx"}
    (t, cpu), = panel.series[("cpu", "node1")]
    assert 0.0 <= cpu <= 100.0 and abs(t - time.time()) < 60
    (_, used), = panel.series[("memory", "node1")]
    total = panel.charts["memory"].y_scale.max  # the axis tops at the host's memory, in GiB
    assert 0.0 < used < total < 1e4
    assert "samplers" in panel.header.value


def test_a_refresh_appends_only_the_new_points_to_the_same_marks(panel):
    chart = panel.charts["cpu"]
    figure, mark = chart.figure, chart.lines["node1"]
    first_x, first_y = list(mark.x), list(mark.y)
    assert len(first_x) == 1
    _wait_for_a_new_frame(panel)
    panel.refresh()
    assert chart.figure is figure and chart.lines["node1"] is mark  # nothing rebuilt
    assert list(mark.x[:1]) == first_x and list(mark.y[:1]) == first_y
    assert len(mark.x) == len(mark.y) == 2 and mark.x[1] > mark.x[0]


def test_the_window_keeps_only_the_newest_points(live_env):
    panel = ProfilerPanel(interval=60, window=2)
    try:
        for _ in range(3):
            _wait_for_a_new_frame(panel)
            panel.refresh()
        points = panel.series[("cpu", "node1")]
        assert len(points) == 2 and points[0][0] < points[1][0]
        assert len(panel.charts["cpu"].lines["node1"].x) == 2
    finally:
        panel.close()


def test_gpu_readings_make_a_chart_per_metric_with_a_line_per_device():
    frame = {  # a frame as a GPU node sends it (NVML cannot run here)
        "node": "gpunode", "timestamp_unix_s": 1000.0,
        "host": {"cpu_utilization_ratio": 0.5, "memory_used_bytes": 2 << 30,
                 "memory_total_bytes": 8 << 30, "network_rx_bytes_per_s": None},
        "gpus": [{"device": "gpu0", "utilization_ratio": 0.9, "memory_used_bytes": 1 << 30,
                  "memory_total_bytes": 16 << 30, "power_watts": 250.0,
                  "temperature_celsius": 70.0},
                 {"device": "gpu1", "utilization_ratio": 0.1, "power_watts": None}],
    }
    points = {(p.chart, p.line): p.value for p in chart_points(frame)}
    assert points == {
        ("cpu", "gpunode"): 50.0, ("memory", "gpunode"): 2.0,
        ("gpu_utilization", "gpunode:gpu0"): 90.0, ("gpu_utilization", "gpunode:gpu1"): 10.0,
        ("gpu_memory", "gpunode:gpu0"): 1.0, ("gpu_power", "gpunode:gpu0"): 250.0,
        ("gpu_temperature", "gpunode:gpu0"): 70.0,
    }
    assert chart_totals(frame) == {"memory": 8.0, "gpu_memory": 16.0}
    units = {s.key: s.unit for s in CHARTS if s.gpu}
    assert units == {"gpu_utilization": "utilisation (%)", "gpu_memory": "used (GiB)",
                     "gpu_power": "power (W)", "gpu_temperature": "temperature (°C)"}


def test_a_gpu_frame_adds_its_charts_to_the_panel(panel):
    frame = {"node": "gpunode", "instance": "i", "seq": 1, "timestamp_unix_s": time.time(),
             "host": {}, "gpus": [{"device": "gpu0", "utilization_ratio": 0.5,
                                   "temperature_celsius": 60.0}]}
    assert panel._take([frame]) == 1
    assert {"gpu_utilization", "gpu_temperature"} <= set(panel.charts)
    assert "gpu_power" not in panel.charts  # not reported: not charted
    figures = list(panel.grid.children)
    assert panel.charts["gpu_utilization"].figure in figures
    assert list(panel.charts["gpu_utilization"].lines["gpunode:gpu0"].y) == [50.0]


def test_pause_stops_updates_and_resume_takes_them_again(panel):
    panel.pause_button.value = True
    assert panel.paused and panel.pause_button.description == "Resume"
    before = _lengths(panel)
    _wait_for_a_new_frame(panel)
    panel.refresh()
    assert _lengths(panel) == before

    panel.resume()
    assert not panel.paused and panel.pause_button.description == "Pause"
    panel.refresh()
    key = ("cpu", "node1")
    assert _lengths(panel)[key] == before[key] + 1


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
    panel.refresh()
    assert "CONFLICT" in panel.error.value  # a refresh does not wipe it

    panel.stop_button.click()  # the next action clears it
    assert panel.error.value == "" and f"<b>{name}</b> stopped" in panel.message.value
    assert client.profiler.session(name)["status"] == "finished"
    panel.name.value = ""
    panel.stop_button.click()
    assert "give the session a name" in panel.error.value


def test_an_unreachable_server_is_shown_not_raised():
    panel = ProfilerPanel(GswarmClient(f"http://127.0.0.1:{free_port()}/", "t"), interval=60)
    assert "NETWORK_ERROR" in panel.problem.value and "trying again" in panel.problem.value
    assert panel.series == {}
    panel.name.value = "x"
    assert panel.start_session() is None and "NETWORK_ERROR" in panel.error.value
    panel.close()
