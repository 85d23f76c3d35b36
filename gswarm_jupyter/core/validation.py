"""Pydantic validation that fails with the API's `INVALID_REQUEST`, naming the field."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: Any, where: str = "body") -> M:
    """`model` from `data`, or `InvalidRequest` whose details name the first offending field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_request(exc, where) from None


def invalid_request(exc: ValidationError, where: str = "body") -> InvalidRequest:
    errors = [
        {"field": ".".join(str(p) for p in e["loc"]) or where, "message": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]
    first = errors[0]
    kind = "query parameter" if where == "query" else "field"
    return InvalidRequest(
        f"invalid {kind} {first['field']!r}: {first['message']}",
        {"field": first["field"], "location": where, "errors": errors},
    )
