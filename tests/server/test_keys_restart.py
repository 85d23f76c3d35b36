"""Keys, revocations and the audit log outlive a restart of a real server process; the SDK talks
with a key (`api_key=` or `GSWARM_API_KEY`)."""

from __future__ import annotations

import pytest

from gswarm_jupyter.client import GswarmClient
from gswarm_jupyter.core.errors import Forbidden, Unauthorized
from gswarm_jupyter.testing import LiveServer


def test_keys_and_the_audit_log_survive_a_restart(tmp_path, monkeypatch):
    with LiveServer(tmp_path, nodes=1) as server, GswarmClient(server.url, server.token) as owner:
        kept = owner.keys.create("kept", roles=["user"], max_bytes=10_000)
        gone = owner.keys.create("gone", roles=["viewer"])
        owner.keys.revoke(gone["key_id"])
        with GswarmClient(server.url, api_key=kept["secret"]) as client:
            client.data.put("node1:dram", data=b"0123456789")
            with pytest.raises(Forbidden):
                client.keys.list()
        before = owner.keys.audit()

    monkeypatch.setenv("GSWARM_API_KEY", kept["secret"])
    with LiveServer(tmp_path, nodes=1) as server:
        with GswarmClient(server.url) as client:  # the key from the environment
            assert client.health()["status"] in ("healthy", "degraded")
            assert client.keys._client.api_key == kept["secret"]
        with GswarmClient(server.url, api_key=gone["secret"]) as client, \
                pytest.raises(Unauthorized, match="revoked"):
            client.health()
        with GswarmClient(server.url, server.token) as owner:
            after = owner.keys.audit()
            assert after[: len(before)] == before
            mine = owner.keys.audit(key_id=kept["key_id"])
            assert [(e["method"], e["decision"]) for e in mine] == [
                ("POST", "allowed"), ("GET", "denied")
            ]
            assert owner.keys.usage(kept["key_id"])["bytes_placed"] == 10
            assert {k["name"]: k["revoked"] for k in owner.keys.list()} == {
                "kept": False, "gone": True
            }
