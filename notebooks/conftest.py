"""The notebooks talk to a gswarm server as they would under `make run`: one real
`jupyter server` with the extension serves every notebook, and the kernels find it through
GSWARM_URL and GSWARM_TOKEN."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from gswarm_jupyter.testing import LiveServer

_server: list[LiveServer] = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Start the server before the first notebook's kernel starts."""
    if not _server:
        root = Path(tempfile.mkdtemp(prefix="gswarm-nb-", dir=os.environ.get("DASK_TEMPORARY_DIRECTORY")))
        server = LiveServer(root, nodes=2).start()
        os.environ["GSWARM_URL"], os.environ["GSWARM_TOKEN"] = server.url, server.token
        os.environ["GSWARM_NOTEBOOK_ROOT"] = str(root)
        _server.append(server)


def pytest_sessionfinish(session, exitstatus):
    while _server:
        _server.pop().stop()
