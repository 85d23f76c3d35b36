"""`LivePanel`: what every panel shares. It refreshes itself while displayed, stops when closed,
and shows failures in the panel instead of raising them into the notebook.

Invariant on messages: an action's refusal (`error`) stays until the user's next action (or the
dismiss button); a failed refresh (`problem`) stays until a refresh succeeds. A refresh never
wipes an action's error."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any, TypeVar

import ipywidgets as w

from ..core.errors import GswarmError
from .refresh import Refresher

T = TypeVar("T")


def red(text: str) -> str:
    return f"<span style='color:#c0392b'>{html.escape(text)}</span>"


def describe(error: GswarmError | str) -> str:
    """`CODE: message` of an API error; a plain string as it is."""
    return f"{error.code}: {error.message}" if isinstance(error, GswarmError) else error


class LivePanel(w.VBox):
    """Subclasses build their widgets, call `super().__init__` with their children (the message
    lines are added below them) and interval, and implement `refresh`. User actions run through
    `act`, refreshes report through `refreshed` / `refresh_failed`."""

    css_class = "gswarm-panel"

    def __init__(self, children: list[w.Widget], interval: float) -> None:
        self.error = w.HTML()
        self.problem = w.HTML()
        self.dismiss = w.Button(icon="times", tooltip="dismiss this message",
                                layout=w.Layout(width="2.4em", visibility="hidden"))
        self.dismiss.on_click(lambda _: self.clear_error())
        self.dismiss.add_class("gswarm-dismiss")
        self.error.add_class("gswarm-error")
        self.problem.add_class("gswarm-problem")
        messages = w.HBox([self.error, self.dismiss], layout=w.Layout(align_items="center"))
        super().__init__([*children, messages, self.problem],
                         layout=w.Layout(border="1px solid #e0e0e0", padding="6px"))
        self.add_class("gswarm-panel")
        self.add_class(self.css_class)
        self.refresher = Refresher(self.refresh, interval)

    def refresh(self) -> None:
        raise NotImplementedError

    # -- messages ------------------------------------------------------------------------------

    def show_error(self, error: GswarmError | str) -> None:
        """An action's failure: shown until the user's next action."""
        self.error.value = red(describe(error))
        self.dismiss.layout.visibility = "visible"

    def clear_error(self) -> None:
        self.error.value = ""
        self.dismiss.layout.visibility = "hidden"

    def refresh_failed(self, error: GswarmError) -> None:
        """A refresh's failure: shown (with the retry period) until a refresh succeeds."""
        self.problem.value = red(f"could not refresh: {describe(error)} "
                                 f"(trying again every {self.refresher.interval:g} s)")

    def refreshed(self) -> None:
        if self.problem.value:
            self.problem.value = ""

    def act(self, call: Callable[[], T]) -> T | None:
        """Run a user action: the previous action's error goes, a refusal is shown, not raised."""
        self.clear_error()
        try:
            return call()
        except GswarmError as exc:
            self.show_error(exc)
            return None

    # -- life cycle ----------------------------------------------------------------------------

    def owned(self) -> list[w.Widget]:
        """Widgets the panel made outside its children list, closed with it."""
        return []

    def start(self) -> None:
        """Refresh every `interval` seconds (displaying a panel starts it)."""
        self.refresher.start()

    def stop(self) -> None:
        """Stop refreshing; the panel stays on screen with what it last drew."""
        self.refresher.stop()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        self.start()  # refresh while displayed
        return super()._repr_mimebundle_(**kwargs)

    def close(self) -> None:
        self.stop()
        for widget in self.owned():
            widget.close()
        super().close()
