"""`%gswarm alloc` (reserve, list, free) in IPython's shell against a real server."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError


def test_alloc_reserve_list_and_free(ip, capsys):
    ip.run_line_magic("gswarm", "alloc reserve 2MiB --for 120 --device node1:dram --user ana -o a")
    made = ip.user_ns["a"]
    assert (made["memory_size"], made["gpu_id"], made["user_id"]) == (2 * 2**20, "node1:dram",
                                                                       "ana")
    assert f"reserved 2.0 MiB on node1:dram as {made['allocation_id']}" in capsys.readouterr().out
    table = ip.run_line_magic("gswarm", "alloc -o listed")
    assert made["allocation_id"] in repr(table) and "2.0 MiB" in repr(table)
    assert [x["allocation_id"] for x in ip.user_ns["listed"]] == [made["allocation_id"]]
    ip.run_line_magic("gswarm", f"alloc free {made['allocation_id']}")
    assert f"freed {made['allocation_id']}" in capsys.readouterr().out
    with pytest.raises(UsageError, match="NOT_FOUND"):
        ip.run_line_magic("gswarm", f"alloc free {made['allocation_id']}")
    with pytest.raises(UsageError, match="--for"):
        ip.run_line_magic("gswarm", "alloc reserve 2MiB")
    with pytest.raises(UsageError, match="not a size"):
        ip.run_line_magic("gswarm", "alloc reserve lots --for 5")
