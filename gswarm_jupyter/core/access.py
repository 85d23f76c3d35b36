"""The gate every gswarm call passes: who is calling, what it may touch, what it may still use,
and what is written to the audit log. No HTTP here: the server hands in strings and numbers.

Invariant: a Jupyter identity (the server owner: token or login) holds every scope and is rate
limited only when `limit_owner`; a key holds its scopes and roles, is rate limited by its own
`requests_per_minute` (else the server's default), and is refused a task-starting call at
`max_concurrent_tasks` and a placement past `max_bytes` (its models and chunks, and the bytes its
allocations reserve that they do not hold). Unauthenticated calls are limited by address.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from .audit import AuditEvent, AuditLog, should_log
from .errors import Forbidden, GswarmError, InsufficientMemory, RateLimitExceeded, Unauthorized
from .key_usage import KeyUsage
from .keys import Key, KeyStore
from .ratelimit import Decision, RateLimiter
from .scopes import action_of, missing, required


@dataclass(frozen=True)
class Caller:
    """Who a call is from: `key:<id>`, `token:<hash>`, `user:<name>` or `ip:<address>`."""

    identity: str
    key: Key | None = None
    authenticated: bool = True
    refused_key_id: str | None = None  # a revoked or expired key presented: audited under its id

    @classmethod
    def refused(cls, identity: str, refusal: Unauthorized) -> Caller:
        """The caller whose key `refusal` turned away (its id kept when the secret was right)."""
        key_id = refusal.details.get("key_id")
        return cls(identity, None, False, key_id if isinstance(key_id, str) else None)

    @property
    def key_id(self) -> str | None:
        return self.key.key_id if self.key is not None else self.refused_key_id


class Reserved(Protocol):
    """What the gate needs of an owner's resource allocations."""

    def unused_bytes(self, owner: str) -> int:
        """Bytes the owner's allocations reserve that its own placements do not fill."""

    def records(self, owner: str) -> list[dict[str, Any]]:
        """The owner's allocations as the API shows them."""


class _NoReservations:
    def unused_bytes(self, owner: str) -> int:
        return 0

    def records(self, owner: str) -> list[dict[str, Any]]:
        return []


class BytesQuotaExceeded(InsufficientMemory):
    """A key's `max_bytes` would be passed: `details` `{quota, used, required}`."""

    def __init__(self, message: str, *, quota: int, used: int, required: int | None) -> None:
        GswarmError.__init__(self, message, {"quota": quota, "used": used, "required": required})


class Access:
    """Keys, their usage, the rate limiter and the audit log, as one gate."""

    def __init__(
        self,
        keys: KeyStore,
        usage: KeyUsage,
        audit: AuditLog,
        limiter: RateLimiter,
        *,
        audit_reads: bool = False,
        limit_owner: bool = False,
        reserved: Reserved | None = None,
    ) -> None:
        self.keys = keys
        self.reserved: Reserved = reserved if reserved is not None else _NoReservations()
        self.usage = usage
        self.audit = audit
        self.limiter = limiter
        self.audit_reads = audit_reads
        self.limit_owner = limit_owner

    def authenticate(self, secret: str) -> Caller:
        """The caller holding this key secret (`Unauthorized` if unknown, revoked or expired)."""
        key = self.keys.authenticate(secret)
        return Caller(f"key:{key.key_id}", key)

    def rate(self, caller: Caller) -> Decision | None:
        """Count one request of `caller`: None when the limiter is off."""
        if caller.key is not None:
            per_minute = caller.key.quota("requests_per_minute")
            if per_minute is None and not self.limiter.enabled:
                return None
            return self.limiter.hit(caller.identity, per_minute)
        if not self.limiter.enabled:
            return None
        decision = self.limiter.hit(caller.identity)
        if caller.authenticated and not self.limit_owner and not decision.allowed:
            # The owner is counted (the contract's headers are on every response) but never refused.
            return Decision(True, decision.limit, 0, decision.reset)
        return decision

    @staticmethod
    def refuse_rate(decision: Decision) -> RateLimitExceeded:
        return RateLimitExceeded(
            f"rate limit of {decision.limit} requests a minute exceeded; "
            f"retry in {decision.retry_after} s",
            {"retry_after": decision.retry_after},
        )

    def allow(self, caller: Caller, resources: Iterable[str], method: str) -> None:
        """`Forbidden` naming the scopes a key lacks for `method` on `resources`."""
        if caller.key is None:
            return
        needed = required(resources, method)
        lacking = missing(caller.key.held, needed)
        if lacking:
            raise Forbidden(
                f"API key {caller.key.key_id} lacks {', '.join(lacking)}",
                {"required": sorted(needed), "missing": lacking, "key_id": caller.key.key_id},
            )

    def before_task(self, caller: Caller) -> None:
        """`429` when a key is at its `max_concurrent_tasks`."""
        quota = caller.key.quota("max_concurrent_tasks") if caller.key is not None else None
        if quota is None or caller.key is None:
            return
        used = self.usage.concurrent_tasks(caller.key.key_id)
        if used >= quota:
            raise RateLimitExceeded(
                f"API key {caller.key.key_id} has {used} tasks queued or running, its quota is "
                f"{quota}: wait for one to finish",
                {"quota": quota, "used": used, "retry_after": 1},
            )

    def before_placing(self, caller: Caller, size: int | None) -> None:
        """`507` when placing `size` more bytes would pass a key's `max_bytes`."""
        quota = caller.key.quota("max_bytes") if caller.key is not None else None
        if quota is None or caller.key is None:
            return
        used = self.bytes_placed(caller.key.key_id)
        if used + (size or 0) > quota or (size is None and used >= quota):
            raise BytesQuotaExceeded(
                f"API key {caller.key.key_id} may place {quota} bytes; it has {used} placed and "
                f"asks for {size if size is not None else 'more'}",
                quota=quota, used=used, required=size,
            )

    def bytes_placed(self, key_id: str) -> int:
        """A key's models and chunks, and what its allocations reserve beyond them."""
        return self.usage.bytes_placed(key_id) + self.reserved.unused_bytes(f"key:{key_id}")

    def made(self, caller: Caller, data: Any, status: int, registers_model: bool) -> None:
        """Note in the key's ledger what a successful answer says it made."""
        if caller.key is None or not isinstance(data, dict) or status >= 300:
            return
        key_id = caller.key.key_id
        if isinstance(data.get("task_id"), str):
            self.usage.record(key_id, "task", data["task_id"])
        if status == 201 and isinstance(data.get("chunk_id"), str):
            self.usage.record(key_id, "chunk", data["chunk_id"])
        if status == 201 and registers_model and isinstance(data.get("model_name"), str):
            self.usage.record(key_id, "model", data["model_name"])

    def key_usage(self, key_id: str) -> dict[str, Any]:
        """What a key uses now."""
        key = self.keys.get(key_id)
        return {
            "key_id": key_id,
            "requests_last_minute": self.limiter.count(f"key:{key_id}"),
            "concurrent_tasks": self.usage.concurrent_tasks(key_id),
            "bytes_placed": self.bytes_placed(key_id),
            "allocations": self.reserved.records(f"key:{key_id}"),
            "quotas": dict(key.quotas),
        }

    def record(
        self, caller: Caller, method: str, route: str, resources: Iterable[str], status: int,
        action: str | None = None, quota_refused: bool = False,
    ) -> None:
        """Write the call to the audit log if it is a write, a denial, or a read when asked
        (`action` is the method's unless given, as for gRPC calls; `quota_refused` when the
        answer is the key's `BytesQuotaExceeded`, a denial whatever its status)."""
        action = action or action_of(method)
        if not should_log(action, status, self.audit_reads):
            return
        self.audit.append(
            AuditEvent(caller.identity, caller.key_id, method, route, tuple(resources), action,
                       status, quota_refused)
        )
