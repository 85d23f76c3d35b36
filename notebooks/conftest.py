"""The notebooks talk to a gswarm server as they would under `make run`: this starts one real
`jupyter server` with the extension for the notebook tests, and points the kernels at it."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

_server: dict[str, object] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server() -> None:
    root = Path(tempfile.mkdtemp(prefix="gswarm-nb-", dir=os.environ.get("DASK_TEMPORARY_DIRECTORY")))
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(root / "runtime")}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root",
            f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}", f"--GswarmApp.data_dir={root / 'data'}",
            "--GswarmApp.grpc_port=0", "--GswarmApp.local_nodes=2",
        ],
        env=env,
        stdout=open(root / "server.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the notebook server exited; see {root / 'server.log'}")
        try:
            r = httpx.get(url + "gswarm/api/v1/health", headers={"Authorization": f"token {token}"})
            if r.status_code == 200 and r.json()["data"]["nodes_online"] == 2:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    else:
        proc.terminate()
        raise RuntimeError("the notebook server did not become healthy in 120 s")
    os.environ["GSWARM_URL"], os.environ["GSWARM_TOKEN"] = url, token
    os.environ["GSWARM_NOTEBOOK_ROOT"] = str(root)
    _server["proc"] = proc


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Start the server before the first notebook's kernel starts."""
    if "proc" not in _server:
        _start_server()


def pytest_sessionfinish(session, exitstatus):
    proc = _server.pop("proc", None)
    if proc is not None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
