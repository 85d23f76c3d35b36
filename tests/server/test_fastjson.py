"""The server reads every body as the standard library's `json.loads` does (orjson is only its
fast path), and refuses what it refuses with `INVALID_REQUEST`."""

from __future__ import annotations

import datetime
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gswarm_jupyter.core.db import dumps as db_dumps
from gswarm_jupyter.core.errors import InvalidRequest
from gswarm_jupyter.core.validation import parse_json
from gswarm_jupyter.server.fastjson import dumps, loads


def _same(a: object, b: object) -> bool:
    """Equal values of equal types all the way down (NaN equal to NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.text()
    | st.integers(min_value=-(10**30), max_value=10**30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_value_reads_as_the_standard_library_reads_it(value):
    text = json.dumps(value)
    assert _same(loads(text), json.loads(text))
    assert _same(loads(text.encode()), json.loads(text))


@pytest.mark.parametrize("text", [
    "12345678901234567890123",  # beyond 64 bits: an int, never a float
    '{"timeout": -98765432109876543210}',
    "[0.0041600000113248825, 1e400, -1e-400]",  # a float32's digits; infinity; underflow
    "NaN", "[Infinity, -Infinity]",
    '"\\ud800"',  # a lone surrogate
    '{"a": 1, "a": 2}',  # the last of a repeated key
    " [1, 2]\n",
])
def test_texts_orjson_reads_otherwise_read_as_json_does(text):
    assert _same(loads(text), json.loads(text))


@pytest.mark.parametrize("text", ["", "{", "[1,]", "{'a': 1}", b"\xff", "[" * 100_000])
def test_what_json_refuses_is_an_invalid_request_naming_the_field(text):
    with pytest.raises(InvalidRequest) as caught:
        parse_json(text, "input", loads)
    assert caught.value.details == {"field": "input"}


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_value_written_reads_back_as_the_standard_librarys_text_does(value):
    assert _same(json.loads(dumps(value)), json.loads(db_dumps(value)))


@pytest.mark.parametrize("value", [
    {"rows": [[float("nan"), 1.0]]}, [float("inf")], {"big": 10**30}, {1: "int key"},
    {"s": "\ud800"}, {"when": datetime.date(2026, 11, 30)},
    {"float64": np.float64(1.5)}, (1, (2.5, "x")),
])
def test_values_orjson_writes_otherwise_are_written_as_the_standard_library_writes_them(value):
    assert _same(json.loads(dumps(value)), json.loads(db_dumps(value)))
