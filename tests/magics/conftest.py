"""The magics' tests run in IPython's own shell, against a real server process."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell

from gswarm_jupyter.client import GswarmClient


@pytest.fixture
def ip(live_env):
    """A shell with `%load_ext gswarm_jupyter` done; the variables a test made are dropped after."""
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "gswarm_jupyter")
    before = set(shell.user_ns)
    yield shell
    shell.run_line_magic("unload_ext", "gswarm_jupyter")
    for name in set(shell.user_ns) - before:
        shell.user_ns.pop(name, None)


@pytest.fixture
def client(live_env):
    with GswarmClient() as client:
        yield client
