"""`%%gswarm profile` and `%gswarm profile ...` through IPython, against a real server."""

from __future__ import annotations

import uuid

import pytest
from IPython.core.error import UsageError

from gswarm_jupyter.magics.display import Table
from gswarm_jupyter.magics.profile import (
    FIRST_RUN_MS, MIN_SAMPLES, TARGET_SAMPLES, Report, auto_interval, samples_per_node, too_short,
)

BUSY = "import time\nt0 = time.monotonic()\nwhile time.monotonic() - t0 < {s}:\n    pass\n"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_a_profiled_cell_runs_and_its_frames_carry_the_execution_count(ip, client):
    name = _name("cell")
    count = ip.execution_count
    busy = BUSY.format(s=1.0)  # 50 samples per node at 20 ms: enough to chart
    result = ip.run_cell(f"%%gswarm profile {name} --interval 20 -o kept\n{busy}profiled = 42",
                         store_history=True)
    assert result.success, result.error_in_exec
    assert ip.user_ns["profiled"] == 42  # the cell ran in the user's namespace
    report = result.result
    assert isinstance(report, Report)
    assert f"cell [{count}]" in report.table.title and "finished" in report.table.title
    rows = {(r["node"], r["device"], r["metric"]) for r in report.table.rows}
    assert ("node1", "host", "cpu_utilization_ratio") in rows
    assert ("node2", "host", "memory_used_bytes") in rows
    assert report.notice is None and report.plot.data.startswith(b"\x89PNG")
    text = repr(report)
    assert "%" in text and ("MiB" in text or "GiB" in text)

    kept = ip.user_ns["kept"]
    assert kept["name"] == name and kept["status"] == "finished"
    assert kept["tags"] == {"execution_count": count}
    frames = client.profiler.frames(name)
    assert len(frames) == kept["frames_collected"] >= 2
    assert {f["tags"]["execution_count"] for f in frames} == {count}


def test_the_session_is_stopped_even_when_the_cell_raises(ip, client):
    name = _name("boom")
    report = ip.run_cell_magic("gswarm", f"profile {name} --interval 50 --nodes node2",
                               "after = 1\n1 / 0\nafter = 2")
    assert ip.user_ns["after"] == 1
    assert "the cell raised ZeroDivisionError" in report.table.title
    assert {r["node"] for r in report.table.rows} == {"node2"}
    session = client.profiler.session(name)
    assert session["status"] == "finished"
    assert session["tags"] == {"execution_count": ip.execution_count}
    assert name not in [s["name"] for s in client.profiler.status()["active_sessions"]]


def test_line_commands_start_list_stop_and_show(ip, client, capsys):
    name = _name("line")
    assert ip.run_line_magic("gswarm", f"profile start {name} --interval 100 --nodes node1") is None
    assert f"profiling {name} every 100 ms on node1" in capsys.readouterr().out
    listed = ip.run_line_magic("gswarm", "profile list -o kept")
    assert isinstance(listed, Table)
    row = next(r for r in listed.rows if r["name"] == name)
    assert (row["status"], row["every"], row["nodes"]) == ("running", "100 ms", "node1")
    assert name in [s["name"] for s in ip.user_ns["kept"]]

    stopped = ip.run_line_magic("gswarm", f"profile stop {name}")
    assert isinstance(stopped, Table) and stopped.rows
    assert {r["node"] for r in stopped.rows} == {"node1"}
    shown = ip.run_line_magic("gswarm", f"profile show {name} -o kept")
    assert isinstance(shown, Report)
    assert shown.plot is None and "too short to chart" in shown.notice  # stopped at once
    assert shown.table.rows == stopped.rows
    assert len(ip.user_ns["kept"]["frames"]) == ip.user_ns["kept"]["frames_collected"]
    assert client.profiler.session(name)["status"] == "finished"


@pytest.mark.parametrize(
    "line, says",
    [("profile", "usage: %gswarm profile"), ("profile bogus", "unknown action 'bogus'"),
     ("profile start", "start needs a NAME"), ("profile stop", "stop needs a NAME"),
     ("profile show", "show needs a NAME"), ("profile list extra", "list takes no NAME"),
     ("profile start x --interval fast", "invalid int value"),
     ("profile start x --colour red", "unrecognized arguments")],
)
def test_wrong_use_is_a_usage_error_with_the_usage_line(ip, line, says):
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("gswarm", line)
    assert "usage:" in str(info.value) and says in str(info.value)


def test_a_cell_takes_a_name_not_an_action(ip):
    with pytest.raises(UsageError, match=r"usage: %%gswarm profile NAME"):
        ip.run_cell_magic("gswarm", "profile start x", "after = 1")
    assert "after" not in ip.user_ns


def test_server_refusals_are_usage_errors_and_the_cell_does_not_run(ip, client):
    with pytest.raises(UsageError, match="INVALID_REQUEST"):
        ip.run_cell_magic("gswarm", f"profile {_name('fast')} --interval 5", "after = 1")
    assert "after" not in ip.user_ns
    with pytest.raises(UsageError, match="NOT_FOUND"):
        ip.run_line_magic("gswarm", f"profile stop {_name('never')}")
    name = _name("twice")
    ip.run_line_magic("gswarm", f"profile start {name}")
    try:
        with pytest.raises(UsageError, match="CONFLICT"):
            ip.run_cell_magic("gswarm", f"profile {name}", "after = 1")
        assert "after" not in ip.user_ns
    finally:
        client.profiler.stop(name)


def test_without_interval_a_cell_is_sampled_for_its_length(ip, client):
    name = _name("auto")
    first = ip.run_cell_magic("gswarm", f"profile {name} -o kept", BUSY.format(s=1.0))
    assert ip.user_ns["kept"]["sampling_frequency_ms"] == FIRST_RUN_MS  # never run before
    assert first.notice is None and first.plot is not None
    assert samples_per_node(ip.user_ns["kept"]["summary"]) >= MIN_SAMPLES
    duration = ip.user_ns["kept"]["duration_s"]

    ip.run_cell_magic("gswarm", f"profile {name} -o kept", BUSY.format(s=1.0))
    assert ip.user_ns["kept"]["sampling_frequency_ms"] == auto_interval(duration)
    assert samples_per_node(ip.user_ns["kept"]["summary"]) >= MIN_SAMPLES


def test_a_run_too_short_to_chart_says_so_and_shows_its_table(ip, client, capsys):
    name = _name("short")
    report = ip.run_cell_magic("gswarm", f"profile {name} --interval 500", "x = 1")
    assert report.plot is None and report.table.rows
    assert report.notice.startswith("too short to chart:") and "every 500 ms" in report.notice
    assert "--interval" in report.notice
    report._ipython_display_()
    assert "too short to chart" in capsys.readouterr().out
    assert "too short to chart" in repr(report)


def test_the_auto_interval_fits_the_expected_length_within_the_sampler_bounds():
    assert auto_interval(None) == FIRST_RUN_MS
    assert auto_interval(2.0) == 2000 // TARGET_SAMPLES
    assert auto_interval(0.05) == 10  # the sampler's minimum
    assert auto_interval(3600) == 1000  # a long cell: the idle period is enough
    summary = {"node1": {"host": {"cpu_utilization_ratio": {"count": 30}}},
               "node2": {"host": {"cpu_utilization_ratio": {"count": 12},
                                  "memory_used_bytes": {"count": 12}}}}
    assert samples_per_node(summary) == 12 and samples_per_node({}) == 0
    session = {"summary": summary, "sampling_frequency_ms": 10, "duration_s": 0.1}
    assert "even at the sampler's minimum period" in too_short(session)
    session["summary"] = {"node1": {"host": {"cpu_utilization_ratio": {"count": 25}}}}
    assert too_short(session) is None
