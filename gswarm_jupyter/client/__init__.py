"""The Python SDK: `GswarmClient` (sync) and `AsyncGswarmClient` over the REST API."""

from .discovery import discover
from .sdk import AsyncGswarmClient, GswarmClient

__all__ = ["AsyncGswarmClient", "GswarmClient", "discover"]
