"""Scopes and roles of API keys: what a key may do, and what a call needs.

Invariant: a scope is `gswarm:<resource>:<read|write>` over `RESOURCES`; a role is a named bundle
of scopes (`viewer`, `user`, `admin`); `read` covers GET, HEAD and WebSocket subscriptions, `write`
everything else. A call is allowed when every scope it needs is held.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import InvalidRequest

RESOURCES = ("models", "data", "queue", "compute", "profiler", "cluster", "admin")
ACTIONS = ("read", "write")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_ORDINARY = tuple(r for r in RESOURCES if r != "admin")
ROLES: dict[str, frozenset[str]] = {
    "viewer": frozenset(f"gswarm:{r}:read" for r in _ORDINARY),
    "user": frozenset(f"gswarm:{r}:read" for r in _ORDINARY)
    | frozenset(f"gswarm:{r}:write" for r in ("models", "data", "queue", "compute", "profiler")),
    "admin": frozenset(f"gswarm:{r}:{a}" for r in RESOURCES for a in ACTIONS),
}
ALL_SCOPES = ROLES["admin"]


def scope(resource: str, action: str) -> str:
    return f"gswarm:{resource}:{action}"


def action_of(method: str) -> str:
    """`read` for GET/HEAD/OPTIONS (and WebSocket handshakes), `write` for the rest."""
    return "read" if method.upper() in READ_METHODS else "write"


def required(resources: Iterable[str], method: str) -> frozenset[str]:
    """The scopes a call with `method` on a route touching `resources` needs."""
    action = action_of(method)
    return frozenset(scope(r, action) for r in resources)


def normalize(scopes: Iterable[str], field: str = "scopes") -> list[str]:
    """Scopes as given, checked and expanded: `gswarm:<r>:*` and `gswarm:<r>` mean both actions."""
    out: set[str] = set()
    for i, text in enumerate(scopes):
        parts = text.split(":") if isinstance(text, str) else []
        if len(parts) == 2:
            parts.append("*")
        if len(parts) != 3 or parts[0] != "gswarm" or parts[1] not in RESOURCES or parts[2] not in (
            *ACTIONS, "*"
        ):
            raise InvalidRequest(
                f"unknown scope {text!r}: use gswarm:<resource>:<read|write> with a resource "
                f"of {', '.join(RESOURCES)}",
                {"field": f"{field}[{i}]", "value": text},
            )
        actions = ACTIONS if parts[2] == "*" else (parts[2],)
        out.update(scope(parts[1], a) for a in actions)
    return sorted(out)


def check_roles(roles: Iterable[str], field: str = "roles") -> list[str]:
    """The roles as given, each known, without repeats."""
    out: list[str] = []
    for i, role in enumerate(roles):
        if role not in ROLES:
            raise InvalidRequest(
                f"unknown role {role!r}: use one of {', '.join(ROLES)}",
                {"field": f"{field}[{i}]", "value": role},
            )
        if role not in out:
            out.append(role)
    return out


def granted(scopes: Iterable[str], roles: Iterable[str]) -> frozenset[str]:
    """Every scope a key holds: its own and those of its roles."""
    held = set(scopes)
    for role in roles:
        held |= ROLES[role]
    return frozenset(held)


def missing(held: frozenset[str], needed: frozenset[str]) -> list[str]:
    """The needed scopes not held, sorted (empty: allowed)."""
    return sorted(needed - held)
