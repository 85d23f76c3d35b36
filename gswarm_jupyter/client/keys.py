"""`client.keys`: API keys (made, listed, revoked; their usage) and the audit log. Admin only."""

from __future__ import annotations

from typing import Any

from .parts import CONTROL, MAX_PAGE, _clean, _Part


class KeysApi(_Part):
    """API keys: `create` answers the key with its `secret`, shown this once."""

    def create(self, name: str, scopes: list[str] | None = None, roles: list[str] | None = None,
               expires_at: str | float | None = None, requests_per_minute: int | None = None,
               max_concurrent_tasks: int | None = None, max_bytes: int | None = None) -> Any:
        quotas = _clean(requests_per_minute=requests_per_minute,
                        max_concurrent_tasks=max_concurrent_tasks, max_bytes=max_bytes)
        body = _clean(name=name, scopes=list(scopes or []), roles=list(roles or []),
                      expires_at=expires_at, quotas=quotas)
        return self._call("POST", CONTROL + "keys", json=body)

    def list(self, page: int = 1, per_page: int = MAX_PAGE) -> Any:
        return self._call("GET", CONTROL + "keys", params={"page": page, "per_page": per_page},
                          key="keys")

    def get(self, key_id: str) -> Any:
        return self._call("GET", CONTROL + f"keys/{key_id}")

    def usage(self, key_id: str) -> Any:
        """What the key uses now: requests this minute, tasks queued, bytes placed."""
        return self._call("GET", CONTROL + f"keys/{key_id}/usage")

    def revoke(self, key_id: str) -> Any:
        """Revoke at once (its open streams are closed); answers the key record."""
        return self._call("DELETE", CONTROL + f"keys/{key_id}")

    def audit(self, key_id: str | None = None, resource: str | None = None,
              decision: str | None = None, since: str | float | None = None,
              until: str | float | None = None, page: int = 1, per_page: int = MAX_PAGE) -> Any:
        """One page of audit events (oldest first), filtered."""
        params = _clean(key_id=key_id, resource=resource, decision=decision, since=since,
                        until=until, page=page, per_page=per_page)
        return self._call("GET", CONTROL + "audit", params=params, key="events")
