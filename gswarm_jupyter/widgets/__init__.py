"""ipywidgets panels over the SDK. Import the panel you need: `from gswarm_jupyter.widgets import ClusterPanel`."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "ClusterPanel":
        from .cluster import ClusterPanel

        return ClusterPanel
    if name == "TaskPanel":
        from .tasks import TaskPanel

        return TaskPanel
    if name == "ProfilerPanel":
        from .profiler import ProfilerPanel

        return ProfilerPanel
    if name == "ModelPanel":
        from .models import ModelPanel

        return ModelPanel
    raise AttributeError(name)


__all__ = ["ClusterPanel", "ModelPanel", "ProfilerPanel", "TaskPanel"]
