"""gswarm-jupyter: a GPU swarm driven from a notebook.

Importing the package is cheap: the server, the magics and their dependencies load on first use.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__

__all__ = ["__version__"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .server.app import GswarmApp

    return [{"module": "gswarm_jupyter", "app": GswarmApp}]


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext gswarm_jupyter`: registers `%gswarm` and `%%gswarm`."""
    from .magics.gswarm import GswarmMagics

    ipython.register_magics(GswarmMagics(ipython, open_dashboard=_open_dashboard))


def _open_dashboard(*args: Any, **kwargs: Any) -> Any:
    """`%gswarm dashboard`'s panels, imported on first use (ipywidgets, bqplot, sidecar)."""
    from .widgets.dashboard import open_dashboard

    return open_dashboard(*args, **kwargs)


def unload_ipython_extension(ipython: Any) -> None:
    """Nothing to undo beyond what IPython does: kept so `%reload_ext` works."""
