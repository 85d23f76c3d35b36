"""A training task's durable payload: inline rows written as their arrays' bytes and read back
as the same arrays; anything else as JSON carries it."""

from __future__ import annotations

import json

import numpy as np

from gswarm_jupyter.cluster.training import payload
from gswarm_jupyter.core.db import dumps
from gswarm_jupyter.server import fastjson


def test_arrays_come_back_with_their_dtype_shape_and_every_value():
    rows = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)
    rows[0, :3] = [np.float32(1e-45), -0.0, np.finfo(np.float32).max]
    labels = np.arange(64, dtype=np.int64) % 4
    for encoder in (dumps, fastjson.dumps):
        back = payload.decode(json.loads(payload.encode({"training_data": rows,
                                                          "labels": labels}, encoder)))
        assert back["training_data"].dtype == np.float32 and back["labels"].dtype == np.int64
        assert back["training_data"].shape == (64, 8) and back["labels"].shape == (64,)
        assert back["training_data"].tobytes() == rows.tobytes()
        assert np.array_equal(back["labels"], labels)
        assert back["training_data"].flags.writeable


def test_strided_and_zero_dimensional_arrays_are_written_as_their_values():
    grid = np.arange(48, dtype=np.float32).reshape(6, 8)
    given = {"training_data": grid[::2, 1::3], "labels": np.array(7, dtype=np.int64)}
    back = payload.decode(json.loads(payload.encode(given, dumps)))
    for k, v in given.items():
        assert back[k].shape == v.shape and np.array_equal(back[k], v)


def test_lists_and_other_values_pass_as_json():
    given = {"training_data": [["a sentence", "another"]], "labels": [1, 0],
             "nested": {"k": [0.5]}}
    text = payload.encode(given, dumps)
    assert json.loads(text) == given
    assert payload.decode(json.loads(text)) == given
    assert not payload.holds_arrays(payload.decode(json.loads(text)))


def test_holds_arrays_only_when_every_value_is_one():
    x = np.zeros((2, 2), np.float32)
    assert payload.holds_arrays({"training_data": x, "labels": np.zeros(2, np.int64)})
    assert not payload.holds_arrays({"training_data": x, "labels": [0, 1]})
    assert not payload.holds_arrays({})


def test_float32_rows_cost_under_a_third_of_their_json_numbers():
    rows = np.random.default_rng(1).standard_normal((4096, 32)).astype(np.float32)
    as_numbers = dumps({"training_data": rows.tolist()})
    assert len(payload.encode({"training_data": rows}, dumps)) < len(as_numbers) / 3
