"""Chunk layout rules and the chunk registry over SQLite."""

from __future__ import annotations

import json
import re

import pytest

from gswarm_jupyter.core.chunks import ChunkRegistry, check_layout, new_chunk_id, tensor_bytes
from gswarm_jupyter.core.db import Database
from gswarm_jupyter.core.errors import InvalidRequest, NotFound


def test_chunk_ids():
    ids = {new_chunk_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"chunk-[0-9a-f]{12}", i) for i in ids)


def test_tensor_layout_must_fit_the_bytes():
    check_layout("tensor", 24, [2, 3], "float32")
    check_layout("tensor", 0, [0, 5], "int64")
    with pytest.raises(InvalidRequest) as exc:
        check_layout("tensor", 20, [2, 3], "float32")
    assert exc.value.details["expected"] == 24 and exc.value.details["got"] == 20
    for shape, dtype, field in (
        (None, "float32", "metadata.shape"),
        ([2], None, "metadata.dtype"),
        ([2], "float31", "metadata.dtype"),
        ([-1], "uint8", "metadata.shape"),
    ):
        with pytest.raises(InvalidRequest) as exc:
            check_layout("tensor", 2, shape, dtype)
        assert exc.value.details["field"] == field


@pytest.mark.parametrize(
    "shape, dtype, max_bytes",
    [
        ([1] * 33, "uint8", None),  # more dimensions than numpy (or anyone) handles
        ([1] * 150_000, "uint8", None),
        ([2**40, 2**40, 2**40], "float64", None),  # over any byte count a node could hold
        ([0, 10**4000], "uint8", None),  # an empty tensor with an absurd dimension
        ([1024, 1024], "float32", 4 * 2**20 - 1),  # one byte over the configured maximum
    ],
)
def test_tensor_shapes_are_bounded(shape, dtype, max_bytes):
    with pytest.raises(InvalidRequest) as exc:
        check_layout("tensor", None, shape, dtype, max_bytes=max_bytes)
    assert exc.value.details["field"] == "metadata.shape"


def test_a_shape_at_the_limits_is_taken():
    assert tensor_bytes([1] * 32, "uint8") == 1
    assert tensor_bytes([1024, 1024], "float32", 4 * 2**20) == 4 * 2**20


def test_json_chunks_must_parse():
    check_layout("json", None, None, None, json.dumps({"a": [1, 2]}).encode())
    with pytest.raises(InvalidRequest):
        check_layout("json", None, None, None, b"{not json")
    with pytest.raises(InvalidRequest):  # deeper than the parser goes: refused, not a crash
        check_layout("json", None, None, None, b"[" * 100_000 + b"]" * 100_000)
    check_layout("bytes", 3, None, None, b"\xff\x00\x01")


def test_registry_records_and_locations(tmp_path):
    db = Database(tmp_path / "s.sqlite3")
    db.migrate()
    reg = ChunkRegistry(db)
    cid = new_chunk_id()
    reg.create(cid, chunk_type="input", fmt="tensor", size=24, shape=[2, 3], dtype="float32",
               created_by="alice")
    reg.copies.put(cid, "node1", "dram", "available", worker="tcp://a")
    reg.copies.put(cid, "node2", "disk", "copying", task_id="transfer-x-1")
    reg.count_access(cid)
    rec = reg.record(cid, references=1)
    assert rec["chunk_id"] == cid and rec["size"] == 24 and rec["format"] == "tensor"
    assert rec["locations"] == [
        {"device": "node1:dram", "status": "available"},
        {"device": "node2:disk", "status": "copying"},
    ]
    assert rec["metadata"]["shape"] == [2, 3] and rec["metadata"]["access_count"] == 1
    assert rec["metadata"]["created_by"] == "alice" and rec["references"] == 1
    reg.copies.remove(cid, "node2", "disk")
    assert len(reg.record(cid)["locations"]) == 1
    reg.delete(cid)
    assert reg.copies.all() == []  # cascades
    with pytest.raises(NotFound):
        reg.record(cid)
