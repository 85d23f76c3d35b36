"""`TimeChart` and `Sparkline`: bqplot marks that only ever gain points, in a rolling window."""

from __future__ import annotations

import numpy as np

from gswarm_jupyter.widgets.charts import Sparkline, TimeChart, as_dates


def test_points_are_appended_and_the_oldest_dropped_past_the_window():
    chart = TimeChart("t", "unit (x)", window=3)
    for i in range(5):
        assert chart.add("a", 100.0 + i, float(i))
    assert not chart.add("a", 101.0, 9.0)  # older than the last point: ignored
    mark = chart.lines["a"]
    assert len(mark.x) == 0  # nothing sent before flush
    chart.flush()
    assert list(mark.y) == [2.0, 3.0, 4.0]
    assert list(mark.x) == list(as_dates([102.0, 103.0, 104.0]))
    assert chart.figure.marks == [mark]
    chart.close()


def test_only_lines_with_new_points_are_sent_again():
    chart = TimeChart("t", "unit", window=10)
    chart.add("a", 1.0, 1.0)
    chart.add("b", 1.0, 2.0)
    chart.flush()
    sent = []
    chart.lines["a"].observe(lambda change: sent.append("a"), names="y")
    chart.lines["b"].observe(lambda change: sent.append("b"), names="y")
    chart.add("b", 2.0, 3.0)
    chart.flush()
    assert sent == ["b"]
    chart.close()


def test_a_sparkline_shows_its_newest_reading():
    spark = Sparkline("CPU", window=2)
    for t, v in ((1.0, 10.0), (2.0, 20.0), (3.0, 30.0)):
        spark.add(t, v, f"{v:.0f}%")
    assert list(spark.line.y) == [20.0, 30.0] and spark.reading.value == "30%"
    assert spark.line.x.dtype == np.dtype("datetime64[ms]")
    spark.close()
