"""One Ctrl-C in the server's terminal, or SIGINT or SIGTERM to its process group, stops the
server, its services and its worker processes in order, and quietly: no traceback, no replica
that "did not stop cleanly". Worker processes live in sessions of their own, so only the server
tells them to stop.

The time bound is generous, only so that a hang fails instead of blocking the suite.
"""

from __future__ import annotations

import signal

import httpx
import psutil
import pytest

from gswarm_jupyter.testing import LiveServer

STOPS_WITHIN = 30.0  # seconds; a clean stop takes a few

WAYS = {
    # make run in a shell: Jupyter would ask to confirm; make run answers yes for the user
    "ctrl-c in its terminal": ["--ServerApp.answer_yes=True"],
    "SIGINT to its group": [],  # no terminal: nothing to confirm on
    "SIGTERM to its group": [],
}


@pytest.mark.parametrize("way", list(WAYS))
def test_one_stop_request_stops_services_and_workers_quietly(tmp_path, way):
    server = LiveServer(tmp_path, nodes=2, own_session=True, terminal="terminal" in way,
                        extra_args=WAYS[way])
    server.start()
    try:
        assert server.proc is not None
        _serve_a_model(server)
        workers = [p for p in psutil.Process(server.proc.pid).children(recursive=True)
                   if "python" in p.name()]
        assert len(workers) >= 2  # real worker processes
        seen = server.log_path.stat().st_size

        if way == "ctrl-c in its terminal":
            server.type_ctrl_c()
        else:
            server.signal_group(signal.SIGINT if "SIGINT" in way else signal.SIGTERM)
        server.proc.wait(timeout=STOPS_WITHIN)

        _, alive = psutil.wait_procs(workers, timeout=10)
        assert alive == [], f"workers left behind: {alive}"
        with open(server.log_path, "rb") as log:
            log.seek(seen)
            said = log.read().decode(errors="replace")
        assert "gswarm: extension stopped" in said, said  # the extension's stop ran
        assert "Traceback" not in said, said
        assert "did not stop cleanly" not in said, said
    finally:
        server.stop(signal.SIGKILL)  # a failed check must not leave a server behind


def _serve_a_model(server: LiveServer) -> None:
    """A loaded service answering inference: its replica must drain and stop with the server."""
    base = server.url + "gswarm/compute/v1/"
    load = {"model_id": "mlp", "model_path": "builtin://mlp?in=8&hidden=16,16&out=4&seed=0"}
    answer = httpx.post(base + "models", json=load, headers=server.headers, timeout=120)
    assert answer.status_code == 201, answer.text
    ask = {"model_id": "mlp", "input_data": [[0.5] * 8]}
    answer = httpx.post(base + "inference", json=ask, headers=server.headers, timeout=60)
    assert answer.status_code == 200, answer.text
