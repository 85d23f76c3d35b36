"""The OpenAPI 3.1 document of both planes, built from the route table and its pydantic models.

Invariant: nothing but the route table feeds the document, and every operation in it says
- its path parameters (with a pattern where the name has a fixed form), query parameters and body;
- its success answer: the envelope `{success: true, data: <its record>, error: null, timestamp}`;
- every error status it can answer: the envelope `{success: false, data: null, error, timestamp}`
  whose `error.code` is one of the codes API.md's table gives that status.
Every route may answer 401, 403 and 429; one with a query or body 400; one with a body 413; one
with path parameters 404.
"""

from __future__ import annotations

import re
from collections import defaultdict
from http.client import responses as reasons
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .._version import __version__
from ..core.errors import ERRORS_BY_CODE
from ..core.scopes import required
from .routes import Op, Route

REF = "#/components/schemas/{model}"
ALWAYS = (401, 403, 429)
TIMESTAMP = {"type": "string", "format": "date-time"}
ALT_SCHEMAS: dict[str, dict[str, Any]] = {
    "text/csv": {"type": "string"},
    "image/png": {"type": "string", "format": "binary"},
}


def error_codes() -> dict[int, list[str]]:
    """HTTP status -> the error codes that answer with it (API.md section 2)."""
    codes: dict[int, list[str]] = defaultdict(list)
    for code, cls in ERRORS_BY_CODE.items():
        codes[cls.status].append(code)
    return {status: sorted(names) for status, names in sorted(codes.items())}


def build(routes: list[Route], base_url: str = "/") -> dict[str, Any]:
    models: set[type[BaseModel]] = set()
    for route in routes:
        for op in route.ops.values():
            models.update(m for m in (op.response, op.body) if m is not None)
    ordered = sorted(models, key=lambda m: (m.__name__, m.__module__))
    refs, schema = models_json_schema([(m, "validation") for m in ordered], ref_template=REF)
    # pydantic renames models that share a class name; take each model's ref from its own map
    ref_of = {model: refs[(model, "validation")]["$ref"] for model in ordered}
    codes = error_codes()
    _check_links(routes)
    paths: dict[str, Any] = {}
    for route in routes:
        paths[route.path] = {
            method: _operation(route, method, op, ref_of, codes) for method, op in route.ops.items()
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gswarm-jupyter",
            "version": __version__,
            "description": "Control plane (/gswarm/api/v1) and compute plane (/gswarm/compute/v1) "
            "of a GPU swarm served by a Jupyter server extension. Every JSON response is an "
            "envelope {success, data, error, timestamp}.",
        },
        "servers": [{"url": base_url.rstrip("/") or "/"}],
        "security": [{"token": []}],
        "paths": paths,
        "components": {
            "schemas": {**schema.get("$defs", {}), **_error_schemas(codes)},
            "securitySchemes": {
                "token": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "'token <jupyter token>', 'Bearer <jupyter token>', or "
                    "'Bearer gsk_...' (an API key, holding the scopes each operation lists in "
                    "x-gswarm-scopes)",
                }
            },
        },
    }


def operation_id(method: str, path: str) -> str:
    return f"{method}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_')}"


def _check_links(routes: list[Route]) -> None:
    """Every link leads to an operation of the table, naming exactly its path parameters."""
    ops = {(m, r.path): r for r in routes for m in r.ops}
    for route in routes:
        for op in route.ops.values():
            for link in op.links:
                target = ops.get((link.method, link.path))
                if target is None or set(link.parameters) != set(target.path_params()):
                    raise ValueError(f"link {link.name!r} of {route.path} leads nowhere: {link}")


def _error_schemas(codes: dict[int, list[str]]) -> dict[str, Any]:
    """`Error<status>`: the error envelope whose code is one of that status's codes."""
    return {
        f"Error{status}": {
            "type": "object",
            "required": ["success", "data", "error", "timestamp"],
            "additionalProperties": False,
            "properties": {
                "success": {"const": False},
                "data": {"type": "null"},
                "error": {
                    "type": "object",
                    "required": ["code", "message", "details"],
                    "properties": {
                        "code": {"type": "string", "enum": names},
                        "message": {"type": "string"},
                        "details": {"type": "object"},
                    },
                },
                "timestamp": TIMESTAMP,
            },
        }
        for status, names in codes.items()
    }


def _success(data: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["success", "data", "error", "timestamp"],
        "additionalProperties": False,
        "properties": {
            "success": {"const": True},
            "data": data if data is not None else {},
            "error": {"type": "null"},
            "timestamp": TIMESTAMP,
        },
    }


def error_statuses(route: Route, op: Op) -> list[int]:
    """Every error status the operation may answer."""
    statuses = {*ALWAYS, *op.errors}
    if op.query is not None or op.body is not None:
        statuses.add(400)
    if op.body is not None:
        statuses.add(413)
    if route.path_params():
        statuses.add(404)
    return sorted(statuses)


def _parameters(route: Route, op: Op) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    for name, param in route.path_params().items():
        schema: dict[str, Any] = {"type": "string", "minLength": 1}
        if param.pattern:
            schema["pattern"] = param.pattern
        entry: dict[str, Any] = {
            "name": name, "in": "path", "required": True, "description": param.description,
            "schema": schema,
        }
        if param.example is not None:
            entry["example"] = param.example
        parameters.append(entry)
    if op.query is not None:
        properties = op.query.model_json_schema(ref_template=REF)["properties"]
        for name, info in op.query.model_fields.items():
            parameters.append({
                "name": name,
                "in": "query",
                "required": info.is_required(),
                "schema": _query_schema(properties[name]),
            })
    return parameters


def _query_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema: a query string cannot say null (absent is the default)."""
    schema = dict(schema)
    branches = schema.pop("anyOf", None)
    if branches is not None:
        kept = [b for b in branches if b.get("type") != "null"]
        if len(kept) == 1:
            schema.update(kept[0])
        else:
            schema["anyOf"] = kept
    if schema.get("default", ...) is None:
        del schema["default"]
    return schema


def _responses(
    route: Route, op: Op, ref_of: dict[type[BaseModel], str], codes: dict[int, list[str]]
) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    if op.status is not None:
        content: dict[str, Any] = {}
        if op.enveloped:
            data = {"$ref": ref_of[op.response]} if op.response else None
            content[op.content_type] = {"schema": _success(data)}
        elif op.content_type:
            kind = "object" if op.content_type == "application/json" else "string"
            content[op.content_type] = {"schema": {"type": kind}}
        for alt in op.alt_content:
            content[alt] = {"schema": ALT_SCHEMAS.get(alt, {"type": "string"})}
        answer: dict[str, Any] = {"description": reasons.get(op.status, "OK")}
        if content:
            answer["content"] = content
        if op.links:
            answer["links"] = {
                link.name: {
                    "operationId": operation_id(link.method, link.path),
                    "parameters": {
                        param: f"$response.body#/data/{field}"
                        for param, field in link.parameters.items()
                    },
                }
                for link in op.links
            }
        responses[str(op.status)] = answer
    for status in error_statuses(route, op):
        responses[str(status)] = {
            "description": f"Error envelope: {', '.join(codes.get(status, []))}",
            "content": {
                "application/json": {"schema": {"$ref": REF.format(model=f"Error{status}")}}
            },
        }
    return responses


def _operation(
    route: Route,
    method: str,
    op: Op,
    ref_of: dict[type[BaseModel], str],
    codes: dict[int, list[str]],
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": op.summary,
        "operationId": operation_id(method, route.path),
        "tags": [route.tag],
        "parameters": _parameters(route, op),
        "responses": _responses(route, op, ref_of, codes),
        # what an API key must hold for this call (the Jupyter token holds every scope)
        "x-gswarm-scopes": sorted(required(route.resources(method), method)),
    }
    if op.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": ref_of[op.body]}}},
        }
    return operation
