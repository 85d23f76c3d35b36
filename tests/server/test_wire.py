"""The server's JSON text: strict JSON, whatever floats a reply holds."""

from __future__ import annotations

import json
import math

import numpy as np

from gswarm_jupyter.server import wire
from tests.conftest import strict_json


def test_finite_values_are_written_as_json_dumps_writes_them():
    value = {"a": [1.5, 2, "x", None, True], "b": {"c": 1e308, "d": -0.0}}
    assert wire.dumps(value) == json.dumps(value)


def test_nan_and_infinities_are_null_wherever_they_sit():
    nan, inf = math.nan, math.inf
    text = wire.dumps({"rows": [[1.0, nan], (inf, -inf)], "loss": nan, "deep": {"x": [[[inf]]]}})
    assert strict_json(text) == {"rows": [[1.0, None], [None, None]], "loss": None,
                                 "deep": {"x": [[[None]]]}}


def test_a_non_finite_key_is_named_as_json_names_it_and_other_objects_by_their_str():
    text = wire.dumps({math.inf: 1, "n": np.float32("nan"), "o": ValueError("v")})
    assert strict_json(text) == {"Infinity": 1, "n": "nan", "o": "v"}
