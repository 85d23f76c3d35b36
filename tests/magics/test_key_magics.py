"""`%gswarm keys` (list, create, revoke, usage) and `%gswarm connect --key`, in IPython's shell
against a real server."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError


def test_keys_create_list_use_and_revoke(ip, live_server, capsys):
    ip.run_line_magic("gswarm",
                      "keys create notebook-guest --role viewer --rpm 100 --max-bytes 2MiB -o guest")
    made = ip.user_ns["guest"]
    out = capsys.readouterr().out
    assert made["secret"] in out and made["key_id"] in out
    assert made["roles"] == ["viewer"] and made["quotas"]["requests_per_minute"] == 100
    assert made["quotas"]["max_bytes"] == 2 * 2**20
    with pytest.raises(UsageError, match="not a size"):
        ip.run_line_magic("gswarm", "keys create other --max-bytes lots")

    table = ip.run_line_magic("gswarm", "keys -o listed")
    assert "notebook-guest" in repr(table) and "active" in repr(table)
    assert made["secret"] not in repr(table) + str(ip.user_ns["listed"])

    ip.run_line_magic("gswarm", f"connect {live_server.url} --key {made['secret']}")
    assert "connected to" in capsys.readouterr().out
    ip.run_line_magic("gswarm", "nodes")  # a viewer reads
    with pytest.raises(UsageError, match="FORBIDDEN"):
        ip.run_line_magic("gswarm", "keys")  # but is no admin

    ip.run_line_magic("gswarm", f"connect {live_server.url} --token {live_server.token}")
    usage = ip.run_line_magic("gswarm", "keys usage notebook-guest -o used")
    assert ip.user_ns["used"]["requests_last_minute"] >= 2 and "requests this minute" in repr(usage)
    ip.run_line_magic("gswarm", "keys revoke notebook-guest")
    assert f"revoked {made['key_id']}" in capsys.readouterr().out
    with pytest.raises(UsageError, match="no active key"):
        ip.run_line_magic("gswarm", "keys revoke notebook-guest")
    with pytest.raises(UsageError, match="UNAUTHORIZED"):
        ip.run_line_magic("gswarm", f"connect {live_server.url} --key {made['secret']}")
