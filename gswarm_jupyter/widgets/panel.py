"""`LivePanel`: what every panel shares. It refreshes itself while displayed, stops when closed,
and shows errors in its `error` line instead of raising them into the notebook."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w

from ..core.errors import GswarmError
from .refresh import Refresher


def red(text: str) -> str:
    return f"<span style='color:#c0392b'>{html.escape(text)}</span>"


class LivePanel(w.VBox):
    """Subclasses build their widgets (an `error` HTML among them), call `super().__init__`
    with their children and interval, and implement `refresh`."""

    error: w.HTML

    def __init__(self, children: list[w.Widget], interval: float) -> None:
        super().__init__(children)
        self.refresher = Refresher(self.refresh, interval)

    def refresh(self) -> None:
        raise NotImplementedError

    def show_error(self, error: GswarmError | str) -> None:
        text = f"{error.code}: {error.message}" if isinstance(error, GswarmError) else error
        self.error.value = red(text)

    def owned(self) -> list[w.Widget]:
        """Widgets the panel made outside its children list, closed with it."""
        return []

    def start(self) -> None:
        self.refresher.start()

    def stop(self) -> None:
        self.refresher.stop()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        self.start()  # refresh while displayed
        return super()._repr_mimebundle_(**kwargs)

    def close(self) -> None:
        self.stop()
        for widget in self.owned():
            widget.close()
        super().close()
