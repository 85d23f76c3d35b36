"""SIGINT stops the server in order when no terminal can confirm it.

Jupyter asks to confirm a Ctrl-C only when its stdin is a terminal. Otherwise Python's default
turns SIGINT into a `KeyboardInterrupt` that leaves the event loop without stopping any
extension, so services, tasks and workers would die unordered. Where Jupyter handles this
process's signals (its SIGTERM handler belongs to this server), SIGINT takes that same handler.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


def stop_on_interrupt(serverapp: Any) -> bool:
    """Give SIGINT the server's SIGTERM handler when SIGINT has Python's default; say if it did."""
    if threading.current_thread() is not threading.main_thread():
        return False
    on_term = signal.getsignal(signal.SIGTERM)
    if getattr(on_term, "__self__", None) is not serverapp:
        return False  # Jupyter does not handle signals here (e.g. a test's in-process server)
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return False  # Jupyter's own confirmation prompt, or someone else's choice
    signal.signal(signal.SIGINT, on_term)
    return True
