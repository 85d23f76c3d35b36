"""`%gswarm vgpus` (create, list, delete; `-o` keeps the answer) in IPython's shell against a real
server, and the refusals it passes on."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError


def test_vgpus_create_list_and_delete(ip, capsys):
    ip.run_line_magic("gswarm", "vgpus create mag-a --memory 4MiB --units 3 --node node1 -o made")
    made = ip.user_ns["made"]
    assert (made["virtual_gpu_id"], made["memory_size"], made["compute_units"]) == (
        "mag-a", 4 * 2**20, 3)
    assert made["backing"] == "cpu" and f"{made['node']}:{made['device']}" in capsys.readouterr().out
    try:
        table = ip.run_line_magic("gswarm", "vgpus -o listed")
        assert "mag-a" in repr(table) and "4.0 MiB" in repr(table)
        assert [v["virtual_gpu_id"] for v in ip.user_ns["listed"]] == ["mag-a"]
        with pytest.raises(UsageError, match="CONFLICT"):
            ip.run_line_magic("gswarm", "vgpus create mag-a --memory 1MiB")
        with pytest.raises(UsageError, match="--memory"):
            ip.run_line_magic("gswarm", "vgpus create mag-b")
    finally:
        ip.run_line_magic("gswarm", "vgpus delete mag-a -o gone")
    assert ip.user_ns["gone"]["deleted"] is True
    assert "deleted mag-a" in capsys.readouterr().out
    with pytest.raises(UsageError, match="NOT_FOUND"):
        ip.run_line_magic("gswarm", "vgpus delete mag-a")
