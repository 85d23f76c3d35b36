"""Who uses the model store's models, as the store sees them.

The serving side answers whether a copy is in use, stops a model's services when the model is
deleted, and reloads a model's replicas once a new version is stored. The store and its users are
built apart (the services take the store as their `WeightSource`), so both are handed one
`ModelUsers` at construction and each user joins it there: nothing is set on either afterwards.
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger(__name__)


class ModelUser(Protocol):
    def in_use(self, model_name: str, node: str, device: str) -> bool:
        """Whether the copy of the model on `node:device` must stay."""
        ...

    async def stop_model_services(self, model_name: str) -> None:
        """Stop every service of the model (it is being deleted)."""
        ...

    async def model_updated(self, model_name: str, version: int) -> None:
        """`version` of the model is stored and every copy refreshed."""
        ...


class ModelUsers:
    """The users of one model store, joined as each is built; with none, nothing is in use."""

    def __init__(self) -> None:
        self._users: list[ModelUser] = []

    def join(self, user: ModelUser) -> None:
        """Called by a user's constructor."""
        self._users.append(user)

    def in_use(self, model_name: str, node: str, device: str) -> bool:
        """Whether any user holds the copy."""
        return any(u.in_use(model_name, node, device) for u in self._users)

    async def stop_model_services(self, model_name: str) -> None:
        """Every user stops the model's services."""
        for user in list(self._users):
            await user.stop_model_services(model_name)

    async def model_updated(self, model_name: str, version: int) -> None:
        """Tell every user; one that fails is logged and the others still hear of it."""
        for user in list(self._users):
            try:
                await user.model_updated(model_name, version)
            except Exception:  # a service that cannot reload keeps serving; say so in the log
                log.exception("gswarm: %r failed on %s v%s", user, model_name, version)
