"""API keys: gswarm's own credential, durable in SQLite (migration 80), held in memory for the
per-request check.

Invariant: a secret (`gsk_<12 hex of its id>_<43 random chars>`) is shown once, when made, and
stored only as its SHA-256; a presented secret is compared with `hmac.compare_digest`. A revoked
or expired key never authenticates, from the revocation on; whoever watches a key (an open
stream) is told when it is revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .clock import LATEST_EPOCH_S, iso, iso_or_none
from .db import Database, dumps, loads, migration
from .errors import Conflict, InvalidRequest, NotFound, Unauthorized
from .scopes import check_roles, granted, normalize
from .taskstore import parse_since

PREFIX = "gsk_"
LAST_USED_EVERY_S = 60.0  # last_used_at reaches the database at most this often per key

migration(
    80,
    """
    CREATE TABLE api_keys (
        key_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        scopes TEXT NOT NULL,
        roles TEXT NOT NULL,
        quotas TEXT NOT NULL,
        expires_at REAL,
        created_at REAL NOT NULL,
        last_used_at REAL,
        revoked_at REAL
    )
    """,
)


def is_key_secret(credential: str) -> bool:
    """Whether a presented credential is meant as an API key (and not a Jupyter token)."""
    return credential.startswith(PREFIX)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Key:
    key_id: str
    name: str
    secret_hash: str
    scopes: tuple[str, ...]
    roles: tuple[str, ...]
    quotas: dict[str, int | None]
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None
    held: frozenset[str] = field(default=frozenset(), compare=False)

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def quota(self, name: str) -> int | None:
        return self.quotas.get(name)

    def record(self) -> dict[str, Any]:
        """The key as the API shows it (never its secret nor its hash)."""
        return {
            "key_id": self.key_id,
            "name": self.name,
            "scopes": list(self.scopes),
            "roles": list(self.roles),
            "expires_at": iso_or_none(self.expires_at),
            "quotas": dict(self.quotas),
            "created_at": iso(self.created_at),
            "last_used_at": iso_or_none(self.last_used_at),
            "revoked": self.revoked_at is not None,
            "revoked_at": iso_or_none(self.revoked_at),
        }


QUOTA_NAMES = ("requests_per_minute", "max_concurrent_tasks", "max_bytes")


class KeyStore:
    """Makes, finds, authenticates and revokes keys. Call `load` once the database is migrated."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock
        self._keys: dict[str, Key] = {}
        self._stored_last_used: dict[str, float] = {}
        self._watchers: dict[str, dict[int, Callable[[], None]]] = {}
        self._next_watch = 0

    def load(self) -> None:
        """Read every key from the database (at start, after the migrations)."""
        rows = self.db.all("SELECT * FROM api_keys ORDER BY created_at")
        self._keys = {row["key_id"]: _key(row) for row in rows}
        self._stored_last_used = {
            k: key.last_used_at for k, key in self._keys.items() if key.last_used_at is not None
        }

    # -- making and reading -----------------------------------------------------------------

    def create(
        self,
        name: str,
        scopes: list[str],
        roles: list[str] | None = None,
        expires_at: str | float | None = None,
        quotas: dict[str, int | None] | None = None,
    ) -> tuple[Key, str]:
        """A new key and its secret (the only time the secret exists outside its holder)."""
        now = self.clock()
        expiry = _expiry(expires_at, now)
        if any(k.name == name and k.revoked_at is None for k in self._keys.values()):
            raise Conflict(f"a key named {name!r} exists: revoke it or pick another name",
                           {"name": name})
        key_id = "key_" + secrets.token_hex(6)
        while key_id in self._keys:
            key_id = "key_" + secrets.token_hex(6)
        secret = f"{PREFIX}{key_id[4:]}_{secrets.token_urlsafe(32)}"
        scope_list = normalize(scopes)
        role_list = check_roles(roles or [])
        quota_map = {q: (quotas or {}).get(q) for q in QUOTA_NAMES}
        key = Key(
            key_id, name, _hash(secret), tuple(scope_list), tuple(role_list), quota_map, now,
            expiry, held=granted(scope_list, role_list),
        )
        self.db.execute(
            "INSERT INTO api_keys (key_id, name, secret_hash, scopes, roles, quotas, expires_at, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key_id, name, key.secret_hash, dumps(scope_list), dumps(role_list),
             dumps(quota_map), expiry, now),
        )
        self._keys[key_id] = key
        return key, secret

    def get(self, key_id: str) -> Key:
        try:
            return self._keys[key_id]
        except KeyError:
            raise NotFound(f"unknown key {key_id!r}", {"key_id": key_id}) from None

    def all(self) -> list[Key]:
        """Every key, revoked ones included, oldest first."""
        return sorted(self._keys.values(), key=lambda k: (k.created_at, k.key_id))

    # -- using ----------------------------------------------------------------------------------

    def authenticate(self, secret: str) -> Key:
        """The live key whose secret this is; `Unauthorized` for anything else."""
        key_id = "key_" + secret[len(PREFIX):len(PREFIX) + 12]
        key = self._keys.get(key_id)
        # compare even when the id is unknown, so timing does not tell which ids exist
        expected = key.secret_hash if key is not None else _hash(PREFIX)
        if not hmac.compare_digest(_hash(secret), expected) or key is None:
            raise Unauthorized("unknown API key", {"reason": "unknown"})
        now = self.clock()
        if key.revoked_at is not None:
            raise Unauthorized(f"API key {key_id} is revoked", {"reason": "revoked",
                                                                "key_id": key_id})
        if key.expired(now):
            raise Unauthorized(f"API key {key_id} expired at {iso_or_none(key.expires_at)}",
                               {"reason": "expired", "key_id": key_id})
        self._used(key, now)
        return self._keys[key_id]

    def _used(self, key: Key, now: float) -> None:
        self._keys[key.key_id] = replace(key, last_used_at=now)
        if now - self._stored_last_used.get(key.key_id, 0.0) >= LAST_USED_EVERY_S:
            self._stored_last_used[key.key_id] = now
            self.db.execute("UPDATE api_keys SET last_used_at = ? WHERE key_id = ?",
                            (now, key.key_id))

    # -- revoking -----------------------------------------------------------------------------

    def revoke(self, key_id: str) -> Key:
        """Revoke at once; every watcher of the key is told. Revoking twice answers the key."""
        key = self.get(key_id)
        if key.revoked_at is None:
            now = self.clock()
            self.db.execute(
                "UPDATE api_keys SET revoked_at = ?, last_used_at = ? WHERE key_id = ?",
                (now, key.last_used_at, key_id),
            )
            key = self._keys[key_id] = replace(key, revoked_at=now)
            for callback in list(self._watchers.pop(key_id, {}).values()):
                callback()
        return key

    def watch(self, key_id: str, on_revoked: Callable[[], None]) -> Callable[[], None]:
        """Call `on_revoked` when the key is revoked; answers the function that stops watching."""
        self._next_watch += 1
        token = self._next_watch
        self._watchers.setdefault(key_id, {})[token] = on_revoked

        def stop() -> None:
            watchers = self._watchers.get(key_id)
            if watchers is not None:
                watchers.pop(token, None)
                if not watchers:
                    self._watchers.pop(key_id, None)

        return stop

    def watching(self, key_id: str) -> int:
        """How many watchers a key has (open streams)."""
        return len(self._watchers.get(key_id, {}))


def _expiry(expires_at: str | float | None, now: float) -> float | None:
    if expires_at is None:
        return None
    value = float(expires_at) if isinstance(expires_at, (int, float)) else parse_since(
        expires_at, "expires_at"
    )
    if not value <= LATEST_EPOCH_S:  # NaN too: it compares false
        raise InvalidRequest(f"expires_at is past {iso(LATEST_EPOCH_S)}, the last time this API "
                             "names", {"field": "expires_at", "maximum": LATEST_EPOCH_S})
    if value <= now:
        raise InvalidRequest("expires_at is not in the future",
                             {"field": "expires_at", "value": expires_at})
    return value


def _key(row: sqlite3.Row) -> Key:
    scopes, roles = loads(row["scopes"]), loads(row["roles"])
    return Key(
        row["key_id"], row["name"], row["secret_hash"], tuple(scopes), tuple(roles),
        loads(row["quotas"]), row["created_at"], row["expires_at"], row["revoked_at"],
        row["last_used_at"], held=granted(scopes, roles),
    )
