"""`%gswarm keys`: list, create and revoke API keys, and show a key's usage (admin)."""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.error import UsageError

from ..core.units import format_bytes
from .commands import OUT, arg, command
from .display import Column, Table
from .models import byte_rate

ACTIONS = ("list", "create", "revoke", "usage")
COLUMNS = [Column(k, k) for k in ("key_id", "name", "roles", "scopes", "expires", "last used",
                                  "state")]


def _size(text: str) -> int:
    """`2MiB`, `1GB`, `500000`: a byte count (the `--max-bytes` quota)."""
    try:
        return byte_rate(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 512MiB, 2GB)") from None


def _row(key: dict[str, Any]) -> dict[str, Any]:
    return {
        "key_id": key["key_id"],
        "name": key["name"],
        "roles": ", ".join(key["roles"]) or "-",
        "scopes": ", ".join(key["scopes"]) or "-",
        "expires": key.get("expires_at") or "never",
        "last used": key.get("last_used_at") or "never",
        "state": "revoked" if key["revoked"] else "active",
    }


def _key_id(magics: Any, target: str | None) -> str:
    """A key id, or the id of the one active key with that name."""
    if not target:
        raise UsageError("name the key: %gswarm keys revoke KEY_ID_OR_NAME")
    if target.startswith("key_"):
        return target
    named = [k for k in magics.client.keys.list() if k["name"] == target and not k["revoked"]]
    if not named:
        raise UsageError(f"no active key named {target!r}")
    return str(named[0]["key_id"])


@command(
    "keys", "API keys: list (default), create NAME, revoke KEY, usage KEY",
    arg("action", nargs="?", default="list", choices=ACTIONS),
    arg("target", nargs="?", default=None, help="the new key's name, or a key id or name"),
    arg("--scope", action="append", default=[], metavar="SCOPE",
        help="gswarm:<resource>:<read|write> (repeatable)"),
    arg("--role", action="append", default=[], choices=("viewer", "user", "admin"),
        help="a role (repeatable)"),
    arg("--expires", default=None, metavar="TIME", help="ISO 8601 time or epoch seconds"),
    arg("--rpm", type=int, default=None, help="quota: requests per minute"),
    arg("--max-tasks", type=int, default=None, help="quota: tasks queued or running at once"),
    arg("--max-bytes", type=_size, default=None, metavar="SIZE",
        help="quota: bytes of models, chunks and allocations placed (e.g. 512MiB)"),
    OUT,
)
def keys(magics: Any, args: argparse.Namespace, cell: str | None) -> Any:
    api = magics.client.keys
    if args.action == "create":
        if not args.target:
            raise UsageError("name the key: %gswarm keys create NAME --role user")
        key = api.create(args.target, args.scope, args.role, args.expires, args.rpm,
                         args.max_tasks, args.max_bytes)
        magics.keep(args, key)
        print(f"made {key['key_id']} ({key['name']}); its secret, shown this once:\n"
              f"{key['secret']}")
        return None
    if args.action == "revoke":
        key = api.revoke(_key_id(magics, args.target))
        magics.keep(args, key)
        print(f"revoked {key['key_id']} ({key['name']})")
        return None
    if args.action == "usage":
        usage = api.usage(_key_id(magics, args.target))
        magics.keep(args, usage)
        quotas = usage["quotas"]
        rows = [
            {"what": "requests this minute", "used": usage["requests_last_minute"],
             "quota": quotas.get("requests_per_minute")},
            {"what": "tasks queued or running", "used": usage["concurrent_tasks"],
             "quota": quotas.get("max_concurrent_tasks")},
            {"what": "bytes placed", "used": format_bytes(usage["bytes_placed"]),
             "quota": None if quotas.get("max_bytes") is None
             else format_bytes(quotas["max_bytes"])},
        ]
        return Table(rows, [Column("what", ""), Column("used", "used"), Column("quota", "quota")],
                     title=f"usage of {usage['key_id']}")
    listed = api.list()
    magics.keep(args, listed)
    return Table([_row(k) for k in listed], COLUMNS, title=f"{len(listed)} keys")
