"""Pydantic validation and JSON parsing that fail with the API's `INVALID_REQUEST`, naming the field.

Nothing a client sends escapes as another error: nesting too deep for the parser or for pydantic
(`RecursionError`) is an `INVALID_REQUEST` like any other malformed body.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)

# The largest integer a request field may hold where nothing smaller is natural: what SQLite's
# INTEGER, numpy's int64 and protobuf's int64 all keep (a larger one failed at the store as a 500).
INT64_MAX = 2**63 - 1
# The largest float a field the device computes with may hold: a float32 scalar (a weight decay
# of 1e308 failed the optimiser's step: "cannot be converted to type float without overflow").
FLOAT32_MAX = 3.4028234663852886e38


def validate(model: type[M], data: Any, where: str = "body") -> M:
    """`model` from `data`, or `InvalidRequest` whose details name the first offending field.

    JSON (a body, an item of one) is taken strictly: `true` or `"5"` is no number, `5` no string.
    A query string is text, so its values are converted (`?page=2`, `?force=true`).
    """
    try:
        return model.model_validate(data, strict=where != "query")
    except ValidationError as exc:
        raise invalid_request(exc, where) from None
    except RecursionError:
        raise too_deep(where) from None


Loads = Callable[[bytes | bytearray | str], Any]


def parse_json_object(raw: bytes | bytearray | str, field: str = "body",
                      loads: Loads = json.loads) -> dict[str, Any]:
    """The JSON object `raw` holds, or `InvalidRequest` (malformed, too deep, not an object)."""
    data = parse_json(raw, field, loads)
    if not isinstance(data, dict):
        raise InvalidRequest(f"the {field} must be a JSON object", {"field": field})
    return data


def parse_json(raw: bytes | bytearray | str, field: str = "body", loads: Loads = json.loads) -> Any:
    """The JSON value `raw` holds, or `InvalidRequest` naming `field`; `loads` reads it as
    `json.loads` does, raising its errors (the server's is faster: `server.fastjson`)."""
    try:
        return loads(raw)
    except RecursionError:
        raise too_deep(field) from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidRequest(f"malformed JSON {field}: {exc}", {"field": field}) from None


def too_deep(field: str) -> InvalidRequest:
    return InvalidRequest(f"the {field} is nested too deeply", {"field": field})


def invalid_request(exc: ValidationError, where: str = "body") -> InvalidRequest:
    """The field and message a caller can act on: of a union's branches, the one whose kind the
    value had but whose limit it broke (`expires_at` over its maximum, not "should be a
    string"), named by the field alone, not by the branch."""
    errors = [
        {"field": ".".join(str(p) for p in e["loc"] if not _branch(p)) or where,
         "message": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]
    first = next((e for e in errors if e["field"] == errors[0]["field"]
                  and not e["type"].endswith("_type")), errors[0])
    kind = "query parameter" if where == "query" else "field"
    return InvalidRequest(
        f"invalid {kind} {first['field']!r}: {first['message']}",
        {"field": first["field"], "location": where, "errors": errors},
    )


_BRANCHES = frozenset({"str", "int", "float", "bool", "none", "list", "dict"})


def _branch(part: object) -> bool:
    """Whether a location part names a union's branch (`str`, `constrained-float`), not a field."""
    return isinstance(part, str) and (
        part in _BRANCHES or part.startswith(("constrained-", "function-")) or "[" in part)
