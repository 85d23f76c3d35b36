"""`gswarm_jupyter.testing.LiveServer`: a server started by a test serves its own kernels, even when
the test process points GSWARM_URL at another server (the notebooks' server in the same run)."""

from __future__ import annotations

from gswarm_jupyter.testing import LiveServer


def test_a_live_servers_kernels_find_that_server_not_the_callers(tmp_path, monkeypatch):
    monkeypatch.setenv("GSWARM_URL", "http://127.0.0.1:1/other/")
    monkeypatch.setenv("GSWARM_TOKEN", "other-token")
    monkeypatch.setenv("GSWARM_API_KEY", "gsk_other")
    server = LiveServer(tmp_path, nodes=1)
    env = server.env
    assert env["GSWARM_URL"] == server.url and env["GSWARM_TOKEN"] == server.token
    assert "GSWARM_API_KEY" not in env
    assert env["JUPYTER_RUNTIME_DIR"] == str(server.runtime_dir)
