"""Bodies are JSON and taken strictly; query strings are text and converted (core.validation)."""

from __future__ import annotations

import pytest

from gswarm_jupyter.core.errors import InvalidRequest
from gswarm_jupyter.core.keys_api import KeyCreate
from gswarm_jupyter.core.pagination import PageQuery
from gswarm_jupyter.core.profiler_api import StartProfiling
from gswarm_jupyter.core.serving_api import InferenceRequest, ServiceCreate
from gswarm_jupyter.core.training_api import TrainingRequest
from gswarm_jupyter.core.validation import validate


@pytest.mark.parametrize(
    ("body", "field"),
    [
        # found by tests/fuzz: `false` passed for a number (pydantic's lax mode takes it as 0)
        ({"model_name": "m", "config": {"batch_timeout_ms": False}}, "config.batch_timeout_ms"),
        ({"model_name": "m", "config": {"max_batch_size": True}}, "config.max_batch_size"),
        ({"model_name": "m", "config": {"max_batch_size": "8"}}, "config.max_batch_size"),
        ({"model_name": 5}, "model_name"),
    ],
)
def test_a_body_value_of_another_json_type_is_refused_naming_its_field(body, field):
    with pytest.raises(InvalidRequest) as caught:
        validate(ServiceCreate, body, "body")
    assert caught.value.details["field"] == field


@pytest.mark.parametrize(
    ("model", "body", "field", "says"),
    [
        # found by tests/fuzz: a stored expiry past year 9999 failed every later GET /keys
        (KeyCreate, {"name": "k", "expires_at": 1.5e156}, "expires_at", "less than or equal"),
        (KeyCreate, {"name": "k", "expires_at": float("nan")}, "expires_at", "finite"),
        (StartProfiling, {"name": "p", "tags": {"a": float("inf")}}, "tags.a", "finite"),
        # found by tests/fuzz: the optimiser's float32 step overflowed into a failed task (500)
        (TrainingRequest, {"model_id": "m", "training_data": [[1.0]],
                           "hyperparameters": {"weight_decay": 1e308}},
         "hyperparameters.weight_decay", "less than or equal"),
    ],
)
def test_a_number_past_its_field_is_refused_naming_the_field_not_the_union_branch(
        model, body, field, says):
    with pytest.raises(InvalidRequest) as caught:
        validate(model, body, "body")
    assert caught.value.details["field"] == field and says in str(caught.value)


def test_an_item_of_a_body_is_json_too():
    with pytest.raises(InvalidRequest) as caught:
        validate(InferenceRequest, {"model_id": "m", "input_data": [[1]], "options": {"seed": False}},
                 "requests[0]")
    assert caught.value.details["field"] == "options.seed"


def test_a_body_of_the_right_types_passes_and_an_integer_is_a_number():
    req = validate(ServiceCreate, {"model_name": "m", "config": {"batch_timeout_ms": 5}}, "body")
    assert req.config.batch_timeout_ms == 5.0


def test_query_strings_are_converted():
    assert validate(PageQuery, {"page": "2", "per_page": "50"}, "query").page == 2
