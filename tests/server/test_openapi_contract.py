"""The OpenAPI document says enough for a fuzzer to hold the server to it, and the server keeps
the answers the document cannot vary: 405 with `Allow`, and a WebSocket route's refusals in the
envelope."""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest

from gswarm_jupyter.server.handlers import all_routes
from gswarm_jupyter.server.openapi import build
from gswarm_jupyter.server.routes import Link, Op, Route
from tests.fuzz.hooks import TABLE, after_a_partial_delete, error_envelope_problems

from .data_helpers import finished
from .model_helpers import API, register

DOC = build(all_routes())
API_ROOT = "/gswarm/api/v1"
OPERATIONS = [
    (path, method, op) for path, item in DOC["paths"].items() for method, op in item.items()
]


def _resolve(schema: dict) -> dict:
    ref = schema.get("$ref")
    return DOC["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema


def assert_documented(body: Any, method: str, path: str, status: int) -> None:
    """`body` is what the document says `method path` answers with `status`."""
    answer = DOC["paths"][path][method]["responses"][str(status)]
    schema = answer["content"]["application/json"]["schema"]
    # `#/components/...` references resolve against the root: give it the document's components
    jsonschema.validate(body, {**schema, "components": DOC["components"]})


def test_every_error_answer_is_the_envelope_with_the_codes_api_md_gives_its_status() -> None:
    for path, method, op in OPERATIONS:
        for status, answer in op["responses"].items():
            if int(status) < 400:
                continue
            schema = _resolve(answer["content"]["application/json"]["schema"])
            assert schema["properties"]["success"] == {"const": False}, (path, method, status)
            assert schema["properties"]["data"] == {"type": "null"}
            codes = schema["properties"]["error"]["properties"]["code"]["enum"]
            assert sorted(codes) == sorted(c for c, s in TABLE.items() if s == int(status)), (
                path, method, status)


def test_every_success_answer_is_the_envelope_around_its_record() -> None:
    for path, method, op in OPERATIONS:
        for status, answer in op["responses"].items():
            schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
            if int(status) >= 400 or "properties" not in schema:
                continue
            assert schema["properties"]["success"] == {"const": True}, (path, method)
            assert schema["properties"]["error"] == {"type": "null"}
            assert schema["additionalProperties"] is False


def test_routes_with_a_body_or_query_document_400_and_bodies_413() -> None:
    for path, method, op in OPERATIONS:
        has_query = any(p["in"] == "query" for p in op["parameters"])
        if has_query or "requestBody" in op:
            assert "400" in op["responses"], (path, method)
        if "requestBody" in op:
            assert "413" in op["responses"], (path, method)


def test_path_parameters_are_documented_and_names_carry_their_pattern() -> None:
    for path, method, op in OPERATIONS:
        named = {p["name"] for p in op["parameters"] if p["in"] == "path"}
        assert named == set(re.findall(r"\{(\w+)\}", path)), (path, method)
    params = DOC["paths"]["/gswarm/api/v1/models/{name}"]["get"]["parameters"]
    pattern = re.compile(params[0]["schema"]["pattern"])
    # JSON Schema patterns search: the document's must hold the whole name.
    assert pattern.search("fuzz-mlp") and pattern.search("A.b_c-1")
    for bad in ("-a", "a/b", "a b", "", "x" * 129):
        assert not pattern.search(bad), bad


def test_query_parameters_never_say_null() -> None:
    """A query string cannot carry null: an absent parameter is its default."""
    for path, method, op in OPERATIONS:
        for param in op["parameters"]:
            if param["in"] == "query":
                assert '"null"' not in str(param["schema"]).replace("'", '"'), (path, param)
                assert param["schema"].get("default", ...) is not None, (path, param)


def _unbounded_integers(schema: Any, where: str, seen: set[str]) -> Iterator[str]:
    """Where `schema` lets an integer through with no maximum, following references once."""
    if isinstance(schema, list):
        for i, item in enumerate(schema):
            yield from _unbounded_integers(item, f"{where}[{i}]", seen)
        return
    if not isinstance(schema, dict):
        return
    ref = schema.get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        if name not in seen:
            seen.add(name)
            yield from _unbounded_integers(DOC["components"]["schemas"][name], name, seen)
        return
    if schema.get("type") == "integer" and not {"maximum", "exclusiveMaximum"} & set(schema):
        yield where
    for key, value in schema.items():
        yield from _unbounded_integers(value, f"{where}.{key}", seen)


def test_every_integer_a_request_may_carry_has_a_maximum() -> None:
    """No integer reaches a store unbounded: a fuzzed sampling period past 2**63 once overflowed
    SQLite's INTEGER into a 500. Where nothing smaller is natural the ceiling is INT64_MAX."""
    unbounded = [
        found
        for path, method, op in OPERATIONS
        for where, schema in [
            *((f"query {p['name']}", p.get("schema", {})) for p in op.get("parameters", [])),
            *(("body", c.get("schema", {}))
              for c in op.get("requestBody", {}).get("content", {}).values()),
        ]
        for found in _unbounded_integers(schema, f"{method.upper()} {path} {where}", set())
    ]
    assert unbounded == []


def test_async_answers_link_to_their_status_and_task() -> None:
    links = DOC["paths"]["/gswarm/compute/v1/inference/async"]["post"]["responses"]["202"]["links"]
    assert links["get"] == {
        "operationId": "get_gswarm_compute_v1_inference_request_id",
        "parameters": {"request_id": "$response.body#/data/request_id"},
    }
    assert links["cancel"]["operationId"] == "post_gswarm_api_v1_queue_tasks_task_id_cancel"
    ids = {op["operationId"] for _, _, op in OPERATIONS}
    for path, method, op in OPERATIONS:
        for answer in op["responses"].values():
            for link in answer.get("links", {}).values():
                assert link["operationId"] in ids, (path, method, link)


def test_a_link_that_leads_nowhere_is_refused() -> None:
    lost = Link("get", "get", "/gswarm/api/v1/nowhere/{x}", {"x": "x"})
    route = Route("/gswarm/api/v1/things", object, {"post": Op("make", links=(lost,))})
    with pytest.raises(ValueError, match="leads nowhere"):
        build([route])


def test_a_route_answering_only_501_documents_no_success() -> None:
    unserved = Route("/gswarm/compute/v1/someday", object,
                     {"post": Op("not yet", status=None, errors=(501,))}, tag="compute")
    op = build([unserved])["paths"]["/gswarm/compute/v1/someday"]["post"]
    assert not [s for s in op["responses"] if s.startswith("2")]
    assert "501" in op["responses"]


def test_the_fuzz_use_after_free_check_spares_a_delete_that_dropped_one_copy() -> None:
    """`DELETE /models/{name}?device=` drops a copy, the model stays: no use-after-free; a
    `DELETE /models/{name}` without it removed the model, and reading it is checked."""

    def step(method: str, path: str, query: dict | None = None) -> SimpleNamespace:
        return SimpleNamespace(operation=SimpleNamespace(method=method, path=API_ROOT + path),
                               query=query, id=f"{method} {path}")

    def after(deleted: SimpleNamespace) -> SimpleNamespace:
        return SimpleNamespace(internals=SimpleNamespace(find_related=lambda case_id: [deleted]))

    read = step("GET", "/models/{name}")
    assert after_a_partial_delete(after(step("DELETE", "/models/{name}", {"device": "n:dram"})),
                                   read)
    assert not after_a_partial_delete(after(step("DELETE", "/models/{name}")), read)
    assert not after_a_partial_delete(after(step("DELETE", "/data/{chunk_id}", {"device": "x"})),
                                       read)
    assert not after_a_partial_delete(SimpleNamespace(internals=None), read)


def test_the_fuzz_check_refuses_errors_outside_the_table() -> None:
    good = {"success": False, "data": None, "timestamp": "t",
            "error": {"code": "NOT_FOUND", "message": "m", "details": {}}}
    assert error_envelope_problems(good, 404) == []
    assert error_envelope_problems(good, 400)  # the code goes with another status
    assert error_envelope_problems({**good, "error": {**good["error"], "code": "OOPS"}}, 404)
    assert error_envelope_problems({**good, "extra": 1}, 404)
    assert error_envelope_problems({"detail": "Not Found"}, 404)
    assert error_envelope_problems("Can Upgrade only to WebSocket", 400)


@pytest.mark.parametrize("path", ["gswarm/api/v1/ws/tasks", "gswarm/api/v1/ws/models",
                                  "gswarm/api/v1/ws/profiling"])
async def test_a_plain_get_on_a_stream_is_400_in_the_envelope(api, path):
    status, body, _ = await api("GET", path)
    assert status == 400, body
    assert error_envelope_problems(body, 400) == []
    assert body["error"]["code"] == "INVALID_REQUEST"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PATCH", "gswarm/api/v1/models", "GET, POST"),
        ("PUT", "gswarm/api/v1/health", "GET"),
        ("DELETE", "gswarm/compute/v1/resources", "GET, POST"),
        ("POST", "gswarm/compute/v1/resources/alloc_1", "GET, DELETE"),
        ("PATCH", "gswarm/api/v1/ws/tasks", "GET"),
    ],
)
async def test_an_undocumented_method_is_405_with_allow(api, method, path, allow):
    status, body, headers = await api(method, path, body=None if method == "DELETE" else {})
    assert status == 405, body
    assert headers.get("Allow") == allow
    assert body["success"] is False and body["error"]["code"] == "INVALID_REQUEST"


async def test_dropping_one_copy_answers_what_the_document_says(api):
    """Found by tests/fuzz: a dropped copy answers the copies that remain, not ModelDeleted."""
    await register(api, "m")
    for device in ("node2:dram", "node2:disk"):
        status, env, _ = await api("POST", f"{API}/models/m/locations", body={"device": device})
        assert status == 202, env
        assert (await finished(api, env["data"]["task_id"]))["status"] == "completed"
    status, env, _ = await api("DELETE", f"{API}/models/m", params={"device": "node2:dram"})
    assert status == 200, env
    assert_documented(env, "delete", "/gswarm/api/v1/models/{name}", 200)
    status, env, _ = await api("DELETE", f"{API}/models/m/locations/node2:disk")
    assert status == 200, env
    assert_documented(env, "delete", "/gswarm/api/v1/models/{name}/locations/{device}", 200)
    status, env, _ = await api("DELETE", f"{API}/models/m")
    assert status == 200, env
    assert_documented(env, "delete", "/gswarm/api/v1/models/{name}", 200)
