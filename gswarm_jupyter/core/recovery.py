"""When and where a replica that is down (its worker died, or the server restarted) loads again.

Pure: the cluster side feeds it the nodes it sees online and the time the replica has been down.
A replica goes back to its own node as soon as that node is online; only after its node stayed
away for a grace period does it move to another eligible node.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

RESTART_ELSEWHERE_AFTER = 30.0  # seconds a replica's own node may stay away before it moves
MAX_RETRY_DELAY = 60.0  # seconds between tries of a replica that keeps failing to load


def restart_node(
    home: str,
    device: str,
    online: Mapping[str, Collection[str]],
    allowed: Collection[str] | None,
    down_for: float,
    load: Mapping[str, int],
    elsewhere_after: float = RESTART_ELSEWHERE_AFTER,
) -> str | None:
    """The node to load the replica on now, or None to wait.

    `online` maps each online node to its devices; `allowed` is the nodes the service may use
    (None: any); `load` counts the service's running replicas per node (fewest wins a move).
    """
    if device in online.get(home, ()):
        return home
    if down_for < elsewhere_after:
        return None
    eligible = [
        n for n in online
        if n != home and device in online[n] and (allowed is None or n in allowed)
    ]
    if not eligible:
        return None
    return min(eligible, key=lambda n: (load.get(n, 0), _natural_key(n)))


def retry_delay(attempts: int) -> float:
    """Seconds to wait after `attempts` failed tries: 1, 2, 4, ... up to `MAX_RETRY_DELAY`."""
    return min(MAX_RETRY_DELAY, 2.0 ** max(0, attempts - 1))


def _natural_key(name: str) -> tuple[str, int, str]:
    stem = name.rstrip("0123456789")
    digits = name[len(stem):]
    return (stem, int(digits) if digits else -1, name)
