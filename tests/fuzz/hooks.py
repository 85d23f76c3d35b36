"""gswarm's own schemathesis checks and case hooks, loaded by `st run` through
`SCHEMATHESIS_HOOKS`.

Invariant: a response fails here when it is a 5xx the contract does not allow for its route, or
an error outside the envelope or with a code API.md's table does not give its status. The table
is copied here word for word rather than imported, so a drift in `core.errors` is caught too.

The examples phase also sends the API reference's example bodies (docs/api.md) as they are, so
the documented examples are held to a live server too.

A case hook leaves a generated case (fuzzing and stateful phases) as it is or, as often, puts a
name that exists (the seeded model, a node, a device, the seeded chunk) in place of an identifier
the case already has: random strings alone almost never name a resource, and the routes' real
work would go untested.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

import schemathesis
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import use_after_free

from gswarm_jupyter.server.apidoc import BODY_EXAMPLES

# API.md section 2, "Error codes": code -> HTTP status.
TABLE: dict[str, int] = {
    "INVALID_REQUEST": 400,
    "INVALID_INPUT_DATA": 400,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "MODEL_NOT_FOUND": 404,
    "NOT_FOUND": 404,
    "PAYLOAD_TOO_LARGE": 413,
    "CONFLICT": 409,
    "MODEL_ALREADY_LOADED": 409,
    "RATE_LIMIT_EXCEEDED": 429,
    "INTERNAL_ERROR": 500,
    "NOT_IMPLEMENTED": 501,
    "NETWORK_ERROR": 502,
    "RESOURCE_UNAVAILABLE": 503,
    "INSUFFICIENT_MEMORY": 507,
    "REQUEST_TIMEOUT": 504,
    "TASK_FAILED": 500,
    "DEPENDENCY_FAILED": 424,
}
# 5xx a route may answer when its document says so: the server working as meant.
DOCUMENTABLE_5XX = frozenset({501, 502, 503, 504, 507})
# An undeclared method: 405 with INVALID_REQUEST (the table has no row of its own for it).
EXTRA_PAIRS = frozenset({("INVALID_REQUEST", 405)})
ENVELOPE_KEYS = {"success", "data", "error", "timestamp"}


def _documented(case: Any) -> set[str]:
    return set((case.operation.definition.raw or {}).get("responses", {}))


@schemathesis.check
def gswarm_no_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """No 5xx, except 501/502/503/504/507 on a route that documents it."""
    status = response.status_code
    if status < 500:
        return None
    if status in DOCUMENTABLE_5XX and str(status) in _documented(case):
        return None
    raise AssertionError(f"{status} is a server error this route does not document: "
                         f"{response.text[:500]}")


# DELETE /keys/{key_id} revokes: the record stays readable (`revoked: true`, `revoked_at`) as the
# audit trail API.md section 7 promises, and so does its usage (the allocations it still holds),
# so "a deleted resource is still there" is no bug there.
KEPT_AFTER_DELETE = ("/keys/{key_id}", "/keys/{key_id}/usage")  # path templates, however rooted


# `DELETE /models/{name}?device=` drops one copy: the model stays, readable, with its other copies.
DROPS_A_PART = {"/models/{name}": "device"}  # path template -> the query parameter that says so


@schemathesis.check
def gswarm_use_after_free(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis' use_after_free, except on routes whose DELETE keeps a readable record and
    after a DELETE that removed only a part."""
    if case.operation.path.endswith(KEPT_AFTER_DELETE) or after_a_partial_delete(ctx, case):
        return None
    return use_after_free(ctx, response, case)


def after_a_partial_delete(ctx: Any, case: Any) -> bool:
    internals = getattr(ctx, "internals", None)
    if internals is None:  # not a stateful step: nothing was deleted before it
        return False
    for related in internals.find_related(case_id=case.id):
        if related.operation.method.lower() != "delete":
            continue
        for template, parameter in DROPS_A_PART.items():
            if related.operation.path.endswith(template) and (related.query or {}).get(parameter):
                return True
    return False


@schemathesis.check
def gswarm_error_envelope(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every error is `{success: false, data: null, error: {code, message, details}, timestamp}`
    with a code from API.md's table that goes with the response's status."""
    status = response.status_code
    if status < 400:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"a {status} outside the envelope (not JSON): "
                             f"{response.content[:300]!r}") from None
    problems = error_envelope_problems(body, status)
    if problems:
        raise AssertionError(f"a {status} whose envelope is wrong: {'; '.join(problems)}\n"
                             f"{json.dumps(body)[:500]}")
    return None


def error_envelope_problems(body: Any, status: int) -> list[str]:
    """What is wrong with `body` as the error envelope of a `status` answer (empty: nothing)."""
    if not isinstance(body, dict):
        return ["not a JSON object"]
    problems = []
    if set(body) != ENVELOPE_KEYS:
        problems.append(f"keys {sorted(body)} are not {sorted(ENVELOPE_KEYS)}")
    if body.get("success") is not False:
        problems.append("success is not false")
    if body.get("data") is not None:
        problems.append("data is not null")
    if not isinstance(body.get("timestamp"), str):
        problems.append("no timestamp")
    error = body.get("error")
    if not isinstance(error, dict):
        return [*problems, "error is not an object"]
    code = error.get("code")
    if code not in TABLE:
        problems.append(f"code {code!r} is not in API.md's table")
    elif TABLE[code] != status and (code, status) not in EXTRA_PAIRS:
        problems.append(f"code {code} goes with {TABLE[code]}, not {status}")
    if not isinstance(error.get("message"), str) or not error.get("message"):
        problems.append("no message")
    if not isinstance(error.get("details"), dict):
        problems.append("details is not an object")
    return problems


# Identifiers that exist on the fuzzed server (tests/fuzz/test_openapi_fuzz.py seeds them).
MODEL = "fuzz-mlp"
DEVICES = ["node1:disk", "node1:dram", "node2:dram", "node2:disk"]
EXISTING: dict[str, list[Any]] = {
    "name": [MODEL],
    "model_name": [MODEL],
    "model_id": [MODEL],
    "node": ["node1", "node2"],
    "target_node": ["node1", "node2"],
    "nodes": [["node1"], ["node2"]],
    "device": DEVICES,
    "target_device": DEVICES,
    "source_device": DEVICES,
    "download_to": DEVICES,
    "source_url": ["builtin://mlp?in=4&hidden=8&out=2&seed=1"],
    "model_path": ["builtin://mlp?in=4&hidden=8&out=2&seed=1"],
    "input_data": [[[0.1, 0.2, 0.3, 0.4]]],
    "training_data": [[[0.1, 0.2, 0.3, 0.4]]],
    "labels": [[0]],
}
if os.environ.get("GSWARM_FUZZ_CHUNK"):
    EXISTING["chunk_id"] = [os.environ["GSWARM_FUZZ_CHUNK"]]


# A path parameter goes out percent-encoded, and schemathesis judges a value a hook put in by
# its encoded text: `node1:dram` becomes `node1%3Adram`, which fails the device pattern, and the
# valid request was then called negative and its 200 "schema-violating request accepted" (seeds
# 793141735 and 1739721039, `DELETE /models/fuzz-mlp/locations/node2:dram?force=true`). The path
# gets only names that encoding leaves as they are; a device there is bare (`dram`), which the
# routes take as well.
EXISTING_IN_PATH: dict[str, list[Any]] = {
    **{k: safe for k, names in EXISTING.items()
       if (safe := [v for v in names if isinstance(v, str) and quote(v, safe="") == v])},
    "device": ["dram", "disk"],
}


# A training the schema allows can run for many minutes (epochs up to 100000); it gets real
# rows only when it is short, so that a run stays bounded (the route's work is the same).
MAX_EPOCHS_WITH_ROWS = 20


def with_existing_names(values: dict[str, Any],
                        existing: dict[str, list[Any]] = EXISTING) -> st.SearchStrategy[dict[str, Any]]:
    """`values`, each identifier it has kept or replaced by one of `existing`."""
    keys = [k for k in values if k in existing]
    epochs = values.get("epochs", 1)
    if not isinstance(epochs, int) or epochs > MAX_EPOCHS_WITH_ROWS:
        keys = [k for k in keys if k not in ("training_data", "labels")]
    if not keys:
        return st.just(values)
    choices = {k: st.one_of(st.just(values[k]), st.sampled_from(existing[k])) for k in keys}
    return st.fixed_dictionaries(choices).map(lambda chosen: {**values, **chosen})


@schemathesis.hook
def flatmap_case(context: Any, case: Any) -> st.SearchStrategy[Any]:
    """The case with existing names put in its body and path (a name put into a negative case can
    make it valid: schemathesis then judges it again and calls it positive). A stateful step's
    path is left as its link made it."""
    body = with_existing_names(case.body) if isinstance(case.body, dict) else st.just(case.body)
    path = (st.just(case.path_parameters or {}) if stateful(case)
            else with_existing_names(case.path_parameters or {}, EXISTING_IN_PATH))
    return st.tuples(body, path).map(lambda chosen: _with(case, *chosen))


# A stateful step's path parameters come from the link that led to it (the resource the step
# before made). A name put in their place sends the step elsewhere, and schemathesis, which
# counts every changed parameter as the link's, then reports the created resource as missing
# (seed 3841572127: `POST /compute/v1/models {"model_id": "mlp"}` answered 201, and the linked
# `DELETE /compute/v1/models/{model_id}` went to `fuzz-mlp`, registered but not loaded: 404).
def stateful(case: Any) -> bool:
    """Whether `case` is a step of a stateful sequence."""
    meta = getattr(case, "meta", None)
    return meta is not None and str(meta.phase.name) == "stateful"


def _with(case: Any, body: Any, path_parameters: dict[str, Any]) -> Any:
    # Assigning marks the container changed (only then: an unchanged case keeps its metadata).
    if body != case.body:
        case.body = body
    if path_parameters != (case.path_parameters or {}):
        case.path_parameters = path_parameters
    return case


# Path parameters of the reference's examples: its bodies name the model `mlp` (seeded as well).
REFERENCE_PATHS: dict[str, str] = {"name": "mlp", "model_id": "mlp", "node": "node1"}


@schemathesis.hook
def before_add_examples(context: Any, examples: list[Any]) -> None:
    operation = context.operation
    body = BODY_EXAMPLES.get((operation.method.lower(), operation.path))
    if body is None:
        return
    known = {**REFERENCE_PATHS, **{k: v[0] for k, v in EXISTING.items() if k == "chunk_id"}}
    path = {p.name: known.get(p.name, "x") for p in operation.path_parameters}
    examples.append(operation.Case(body=dict(body), path_parameters=path,
                                   media_type="application/json"))
