"""`Dashboard`: the live panels in a JupyterLab side area (a `sidecar.Sidecar`), so they stay in
view while the notebook scrolls. Its panels refresh from the moment it opens until `close()`,
which stops them and removes the side area."""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as w

from ..client import GswarmClient
from .cluster import ClusterPanel
from .models import ModelPanel
from .panel import LivePanel
from .profiler import ProfilerPanel
from .tasks import TaskPanel

PANELS: dict[str, type[LivePanel]] = {
    "cluster": ClusterPanel, "tasks": TaskPanel, "models": ModelPanel, "profiler": ProfilerPanel,
}
# Where the side area opens (sidecar's anchors): beside the notebook by default, wide enough for
# the charts; "right" is JupyterLab's narrow right sidebar.
ANCHORS = ("split-right", "split-left", "split-bottom", "tab-after", "right")


class Dashboard:
    def __init__(self, client: GswarmClient, panels: Sequence[str] = tuple(PANELS),
                 anchor: str = "split-right", title: str = "gswarm") -> None:
        from sidecar import Sidecar

        unknown = [p for p in panels if p not in PANELS]
        if unknown:
            raise ValueError(f"unknown panels {unknown}; known: {list(PANELS)}")
        if anchor not in ANCHORS:
            raise ValueError(f"unknown anchor {anchor!r}; known: {list(ANCHORS)}")
        self.panels: dict[str, LivePanel] = {
            name: PANELS[name](client) for name in dict.fromkeys(panels)  # type: ignore[call-arg]
        }
        self.box = w.VBox(list(self.panels.values()), layout=w.Layout(width="100%"))
        self.box.add_class("gswarm-dashboard")
        self.sidecar = Sidecar(title=title, anchor=anchor)

    def open(self) -> Dashboard:
        """Show the panels in the side area and start their refresh."""
        from IPython.display import display

        with self.sidecar:
            display(self.box)
        for panel in self.panels.values():
            panel.start()  # a panel inside a box is not displayed by itself
        return self

    @property
    def running(self) -> bool:
        return all(p.refresher.running for p in self.panels.values())

    def close(self) -> None:
        for panel in self.panels.values():
            panel.close()
        self.box.close()
        self.sidecar.close()


def open_dashboard(client: GswarmClient, panels: Sequence[str] = tuple(PANELS),
                   anchor: str = "split-right") -> Dashboard:
    """A new dashboard of `panels`, open beside the notebook."""
    return Dashboard(client, panels, anchor).open()
