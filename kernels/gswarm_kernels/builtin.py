"""`builtin://<arch>?<params>` addresses: parsing, defaults and config validation."""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

SCHEME = "builtin"

# Per architecture: parameter -> (kind, default). Kinds: "int" (>= 1), "ints" (comma list of
# ints >= 1, possibly empty), and a tuple of allowed strings.
_SCHEMAS: dict[str, dict[str, tuple[Any, Any]]] = {
    "mlp": {
        "in": ("int", 8),
        "hidden": ("ints", [16, 16]),
        "out": ("int", 4),
        "activation": (("relu", "gelu"), "relu"),
    },
    "gpt": {
        "vocab": ("int", 256),
        "d_model": ("int", 128),
        "layers": ("int", 2),
        "heads": ("int", 4),
        "context": ("int", 128),
    },
}

ARCHITECTURES: tuple[str, ...] = tuple(_SCHEMAS)
DEFAULT_SEED = 0


class BuiltinSpec(NamedTuple):
    arch: str
    config: dict[str, Any]
    seed: int


def parse_builtin_url(url: str) -> BuiltinSpec:
    """Parse `builtin://mlp?in=8&hidden=16,16&out=4&seed=0` into (arch, config, seed)."""
    parts = urlsplit(url)
    if parts.scheme != SCHEME:
        raise ValueError(f"source_url: expected a builtin:// address, got {url!r}")
    if parts.path not in ("", "/") or parts.fragment:
        raise ValueError(f"source_url: unexpected path or fragment in {url!r}")
    arch = parts.netloc
    pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    raw: dict[str, str] = {}
    for key, value in pairs:
        if key in raw:
            raise ValueError(f"{key}: given more than once")
        raw[key] = value
    seed = DEFAULT_SEED
    if "seed" in raw:
        seed = _parse_int("seed", raw.pop("seed"), minimum=0)
    return BuiltinSpec(arch, normalize_config(arch, raw), seed)


def builtin_url(arch: str, config: dict[str, Any], seed: int = DEFAULT_SEED) -> str:
    """The canonical address of a built-in model (inverse of `parse_builtin_url`)."""
    config = normalize_config(arch, config)
    query = "&".join(
        f"{key}={','.join(map(str, value)) if isinstance(value, list) else value}"
        for key, value in config.items()
    )
    return f"{SCHEME}://{arch}?{query}&seed={seed}"


def normalize_config(arch: str, config: dict[str, Any]) -> dict[str, Any]:
    """Validate a config (from a URL's strings or from JSON) and fill defaults."""
    if arch not in _SCHEMAS:
        raise ValueError(f"arch: unknown architecture {arch!r}; expected one of {list(_SCHEMAS)}")
    schema = _SCHEMAS[arch]
    unknown = sorted(set(config) - set(schema))
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown parameter for {arch}; expected {sorted(schema)}")
    result: dict[str, Any] = {}
    for name, (kind, default) in schema.items():
        value = config.get(name, default)
        if kind == "int":
            result[name] = _parse_int(name, value, minimum=1)
        elif kind == "ints":
            result[name] = _parse_ints(name, value)
        elif value not in kind:
            raise ValueError(f"{name}: expected one of {list(kind)}, got {value!r}")
        else:
            result[name] = value
    if arch == "gpt" and result["d_model"] % result["heads"]:
        raise ValueError(
            f"heads: must divide d_model={result['d_model']}, got heads={result['heads']}"
        )
    return result


def _parse_int(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if isinstance(value, str):
        try:
            value = int(value.strip(), 10)
        except ValueError:
            raise ValueError(f"{name}: expected an integer, got {value!r}") from None
    elif not isinstance(value, int):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return value


def _parse_ints(name: str, value: Any) -> list[int]:
    if isinstance(value, str):
        items: list[Any] = value.split(",") if value.strip() else []
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValueError(f"{name}: expected a comma-separated list of integers, got {value!r}")
    return [_parse_int(name, item, minimum=1) for item in items]
