"""`%gswarm` through IPython's own magic machinery, against a real server."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from gswarm_jupyter.magics.display import Table
from gswarm_jupyter.testing import free_port


def test_nodes_is_a_readable_table_and_keeps_the_data_with_o(ip):
    table = ip.run_line_magic("gswarm", "nodes -o kept")
    assert isinstance(table, Table)
    text = repr(table)
    assert text.splitlines()[0] == "2 nodes"
    assert "node1" in text and "online" in text and "GiB" in text
    assert "<table>" in table._repr_html_()
    assert [n["node_id"] for n in ip.user_ns["kept"]] == ["node1", "node2"]
    assert "devices" in ip.user_ns["kept"][0]


def test_status_summarises_health(ip):
    table = ip.run_line_magic("gswarm", "status --out kept")
    assert "2 online of 2" in repr(table)
    assert ip.user_ns["kept"]["status"] == "healthy"


def test_help_lists_the_commands(ip, capsys):
    assert ip.run_line_magic("gswarm", "--help") is None
    out = capsys.readouterr().out
    assert "usage: %gswarm" in out
    for command in ("status", "nodes", "connect"):
        assert command in out


def test_help_names_the_cell_magic_with_two_percent_signs(capsys):
    from gswarm_jupyter.magics import gswarm  # noqa: F401  (registers every command)
    from gswarm_jupyter.magics.commands import build_parser

    build_parser().print_help()
    out = capsys.readouterr().out
    assert "(%%gswarm profile NAME)" in out


@pytest.mark.parametrize("line", ["bogus", "nodes --colour red", "connect", "status 'unclosed"])
def test_wrong_use_is_a_usage_error_with_the_usage_line(ip, line):
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("gswarm", line)
    if line != "status 'unclosed":
        assert "usage: %gswarm" in str(info.value)


def test_a_line_command_used_as_a_cell_magic_is_a_usage_error(ip):
    with pytest.raises(UsageError, match="not a cell magic"):
        ip.run_cell_magic("gswarm", "nodes", "x = 1")


def test_api_failures_are_usage_errors_not_tracebacks(ip, capsys):
    with pytest.raises(UsageError, match="NETWORK_ERROR"):
        ip.run_line_magic("gswarm", f"connect http://127.0.0.1:{free_port()}/ --token t")


def test_connect_switches_servers(ip, live_server, capsys):
    ip.run_line_magic("gswarm", f"connect {live_server.url} --token {live_server.token}")
    assert "connected to" in capsys.readouterr().out


def test_the_dashboard_opens_the_panels_in_a_side_area_and_closes_them(ip, capsys):
    from sidecar import Sidecar

    from gswarm_jupyter.widgets.cluster import ClusterPanel
    from gswarm_jupyter.widgets.profiler import ProfilerPanel

    ip.run_line_magic("gswarm", "dashboard cluster profiler --anchor right -o dash")
    dash = ip.user_ns["dash"]
    try:
        assert "cluster, profiler beside the notebook" in capsys.readouterr().out
        assert isinstance(dash.sidecar, Sidecar) and dash.sidecar.anchor == "right"
        assert [type(p) for p in dash.panels.values()] == [ClusterPanel, ProfilerPanel]
        assert list(dash.box.children) == list(dash.panels.values())
        assert dash.running  # refreshing from the start

        ip.run_line_magic("gswarm", "dashboard -o again")  # another closes the one before
        assert not dash.running and dash.sidecar.comm is None
        again = ip.user_ns["again"]
        assert list(again.panels) == ["cluster", "tasks", "models", "profiler"]
        assert again.sidecar.anchor == "split-right" and again.running
        ip.run_line_magic("gswarm", "dashboard --close")
        assert not again.running and "dashboard closed" in capsys.readouterr().out
    finally:
        dash.close()


def test_the_dashboard_refuses_unknown_panels(ip):
    with pytest.raises(UsageError, match="unknown panels"):
        ip.run_line_magic("gswarm", "dashboard cluster gauges")
