"""What the worker-side stores (chunks, model weights) share: one instance per worker, kept on
the `Worker` object so re-registering plugins or restarting the server (with an external
cluster) drops no memory copy, and a folder of its own in the node's store."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from distributed import Worker

S = TypeVar("S", bound="WorkerStore")

_create_lock = threading.Lock()


class WorkerStore:
    ATTRIBUTE: ClassVar[str]  # the Worker attribute the instance lives on
    SUBFOLDER: ClassVar[str]  # its folder inside the node's store
    STALE: ClassVar[str] = "*.part"  # unfinished writes a previous worker process left behind

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.memory: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        for stale in self.folder.glob(self.STALE):
            stale.unlink(missing_ok=True)

    @classmethod
    def of(cls: type[S], worker: Worker) -> S:
        with _create_lock:
            store = getattr(worker, cls.ATTRIBUTE, None)
            if store is None:
                store = cls(node_store(worker) / cls.SUBFOLDER)
                setattr(worker, cls.ATTRIBUTE, store)
            return store


def node_store(worker: Worker) -> Path:
    """The node agent's store folder (or, before the agent set up, where it would put it)."""
    from ..runtime.agent import PLUGIN_NAME, NodeAgent, default_store

    agent = worker.plugins.get(PLUGIN_NAME)
    if isinstance(agent, NodeAgent) and agent.store is not None:
        return agent.store
    return default_store(worker, None)
