"""The OpenAPI 3 document of both planes, built from the route table and its pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .. import __version__
from .routes import Route

REF = "#/components/schemas/{model}"


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


def _envelope(data: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["success", "data", "error", "timestamp"],
        "properties": {
            "success": {"type": "boolean"},
            "data": data or {},
            "error": {"anyOf": [{"$ref": REF.format(model="ErrorBody")}, {"type": "null"}]},
            "timestamp": {"type": "string", "format": "date-time"},
        },
    }


def build(routes: list[Route], base_url: str = "/") -> dict[str, Any]:
    models: set[type[BaseModel]] = {ErrorBody}
    for route in routes:
        for op in route.ops.values():
            models.update(m for m in (op.response, op.body) if m is not None)
    ordered = sorted(models, key=lambda m: (m.__name__, m.__module__))
    refs, schema = models_json_schema([(m, "validation") for m in ordered], ref_template=REF)
    # pydantic renames models that share a class name; take each model's ref from its own map
    ref_of = {model: refs[(model, "validation")]["$ref"] for model in ordered}
    paths: dict[str, Any] = {}
    for route in routes:
        item: dict[str, Any] = {}
        for method, op in route.ops.items():
            item[method] = _operation(route, method, op, ref_of)
        paths[route.path] = item
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
            "schemas": schema.get("$defs", {}),
            "securitySchemes": {
                "token": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "'token <jupyter token>' or 'Bearer <jupyter token>'",
                }
            },
        },
    }


def _operation(
    route: Route, method: str, op: Any, ref_of: dict[type[BaseModel], str]
) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"\{(\w+)\}", route.path)
    ]
    if op.query is not None:
        for name, info in op.query.model_fields.items():
            field_schema = op.query.model_json_schema()["properties"][name]
            parameters.append(
                {"name": name, "in": "query", "required": info.is_required(), "schema": field_schema}
            )
    data = {"$ref": ref_of[op.response]} if op.response else None
    if op.enveloped:
        ok = {"content": {op.content_type: {"schema": _envelope(data)}}}
    else:
        ok = {"content": {op.content_type: {"schema": {"type": "string"}}}}
    responses: dict[str, Any] = {str(op.status): {"description": "OK", **ok}}
    for status in sorted({401, 403, 429, *op.errors}):
        responses[str(status)] = {
            "description": "Error envelope",
            "content": {"application/json": {"schema": _envelope(None)}},
        }
    operation: dict[str, Any] = {
        "summary": op.summary,
        "operationId": f"{method}_{re.sub(r'[^A-Za-z0-9]+', '_', route.path).strip('_')}",
        "tags": [route.tag],
        "parameters": parameters,
        "responses": responses,
    }
    if op.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": ref_of[op.body]}}
            },
        }
    return operation
