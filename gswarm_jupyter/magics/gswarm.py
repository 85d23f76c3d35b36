"""`%gswarm COMMAND ...` and `%%gswarm COMMAND ...`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from ..client import GswarmClient
from ..core.errors import GswarmError
# Each command module registers its commands when imported.
from . import (  # noqa: F401
    alloc, dashboard, data, keys, models, profile, serving, system, tasks, training, vgpus,
)
from .commands import COMMANDS, parse


@magics_class
class GswarmMagics(Magics):
    """`open_dashboard(client, panels, anchor)` opens the live panels beside the notebook
    (`%gswarm dashboard`); the extension passes it in, so the magics never import the widgets."""

    def __init__(self, shell: Any, open_dashboard: Callable[..., Any] | None = None) -> None:
        super().__init__(shell)
        self._client: GswarmClient | None = None
        self.open_dashboard = open_dashboard
        self.dashboard: Any = None  # the open one, if any

    @property
    def client(self) -> GswarmClient:
        """The SDK client, found on first use (GSWARM_URL/GSWARM_TOKEN or the connection file)."""
        if self._client is None:
            try:
                self._client = GswarmClient()
            except GswarmError as exc:
                raise UsageError(exc.message) from None
        return self._client

    def connect(self, url: str, token: str | None, api_key: str | None = None) -> GswarmClient:
        if self._client is not None:
            self._client.close()
        self._client = GswarmClient(url, token, api_key=api_key)
        return self._client

    def keep(self, args: argparse.Namespace, value: Any) -> None:
        """`-o NAME`: put the value into the user's namespace."""
        if getattr(args, "out", None):
            self.shell.user_ns[args.out] = value

    @line_cell_magic
    def gswarm(self, line: str, cell: str | None = None) -> Any:
        """Drive the gswarm cluster: `%gswarm --help` lists the commands."""
        args = parse(line)
        if args is None:
            return None
        cmd = COMMANDS[args.command]
        if cell is not None and not cmd.cell:
            raise UsageError(f"%%gswarm {cmd.name} is not a cell magic; use %gswarm {cmd.name}")
        try:
            return cmd.run(self, args, cell)
        except GswarmError as exc:
            raise UsageError(f"{exc.code}: {exc.message}") from None
