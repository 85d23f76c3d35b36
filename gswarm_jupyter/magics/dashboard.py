"""`%gswarm dashboard [PANEL ...]`: the live panels beside the notebook, in a JupyterLab side area.

One dashboard per kernel: opening another closes the one before; `--close` closes it. The panels
come from the dashboard factory the extension passed to the magics at load time (magics never
import the widgets themselves)."""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.error import UsageError

from .commands import OUT, arg, command

PANEL_NAMES = ("cluster", "tasks", "models", "profiler")
ANCHORS = ("split-right", "split-left", "split-bottom", "tab-after", "right")


@command(
    "dashboard", "Open the live panels beside the notebook (a JupyterLab side area)",
    arg("panels", nargs="*", metavar="PANEL",
        help=f"which panels, in order: {', '.join(PANEL_NAMES)} (default: all)"),
    arg("--anchor", default="split-right", choices=ANCHORS,
        help="where: split-right (beside the notebook, default) or right (the sidebar), ..."),
    arg("--close", action="store_true", help="close the dashboard"),
    OUT,
)
def dashboard(magics: Any, args: argparse.Namespace, cell: str | None) -> Any:
    unknown = [p for p in args.panels if p not in PANEL_NAMES]
    if unknown:
        raise UsageError(f"%gswarm dashboard: unknown panels {unknown}; "
                         f"choose from {', '.join(PANEL_NAMES)}")
    previous = getattr(magics, "dashboard", None)
    if previous is not None:
        previous.close()
        magics.dashboard = None
    if args.close:
        print("gswarm dashboard closed" if previous is not None else "no dashboard is open")
        return None
    if magics.open_dashboard is None:
        raise UsageError("%gswarm dashboard needs the widgets: load it with %load_ext gswarm_jupyter")
    panels = tuple(args.panels) or PANEL_NAMES
    magics.dashboard = magics.open_dashboard(magics.client, panels, args.anchor)
    magics.keep(args, magics.dashboard)
    print(f"gswarm dashboard: {', '.join(panels)} beside the notebook ({args.anchor}, "
          "JupyterLab); %gswarm dashboard --close closes it")
    return None
