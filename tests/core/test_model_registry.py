"""The model registry (SQLite), placement policy and source parsing: pure units."""

from __future__ import annotations

import os

import pytest

from gswarm_jupyter.core.db import Database
from gswarm_jupyter.core.errors import (
    Conflict,
    Forbidden,
    InsufficientMemory,
    InvalidRequest,
    ModelNotFound,
    NotFound,
)
from gswarm_jupyter.core.modelregistry import ModelRegistry
from gswarm_jupyter.core.placement import Resident, choose_source, free_bytes, plan_room
from gswarm_jupyter.core.sources import parse_source


@pytest.fixture
def registry(tmp_path):
    db = Database(tmp_path / "state.sqlite3")
    db.migrate()
    yield ModelRegistry(db)
    db.close()


def test_create_record_and_durability(registry, tmp_path):
    registry.create("m1", source_url="builtin://mlp", model_type="mlp", metadata={"a": 1})
    with pytest.raises(Conflict):
        registry.create("m1", source_url="builtin://mlp", model_type=None, metadata={})
    registry.update("m1", size=10, checksum="ab", format="safetensors")
    registry.copies.put("m1", "node1", "disk", "ready", size=10, worker="tcp://w1")
    registry.copies.put("m1", "node2", "dram", "copying", size=10, task_id="model_copy-m1-1")
    rec = registry.record("m1", {"node1": "http://x"})
    assert rec["status"] == "ready" and rec["model_size"] == 10 and rec["version"] == 1
    assert [(loc["device"], loc["status"]) for loc in rec["locations"]] == [
        ("node1:disk", "ready"), ("node2:dram", "copying")]
    assert rec["services"] == {"node1": "http://x"} and rec["metadata"] == {"a": 1}
    with pytest.raises(ModelNotFound):
        registry.record("nope")
    # a second connection to the same file (a restarted server) sees the same state
    again = ModelRegistry(Database(tmp_path / "state.sqlite3"))
    assert again.record("m1")["checksum"] == "ab"
    registry.delete("m1")
    assert registry.copies.of("m1") == [] and not registry.exists("m1")


def test_status_is_derived_from_locations(registry):
    registry.create("m", source_url="http://h/m", model_type=None, metadata={})
    assert registry.record("m")["status"] == "unavailable"
    registry.copies.put("m", "node1", "disk", "copying", task_id="t")
    assert registry.record("m")["status"] == "downloading"
    registry.copies.remove("m", "node1", "disk")
    registry.update("m", error={"code": "TASK_FAILED", "message": "x"})
    assert registry.record("m")["status"] == "failed"
    registry.copies.put("m", "node1", "dram", "lost")
    registry.update("m", error=None)
    assert registry.record("m")["status"] == "lost"


def test_plan_room_evicts_least_recently_used_copies_kept_elsewhere():
    residents = [
        Resident("new", 40, last_used=3.0, evictable=True),
        Resident("old", 30, last_used=1.0, evictable=True),
        Resident("only", 100, last_used=0.5, evictable=False),  # last copy: never
    ]
    assert plan_room(50, 60, residents, evict=False, device="n:dram") == []
    assert [r.model_name for r in plan_room(80, 60, residents, evict=True, device="n:dram")] == [
        "old"]
    assert [r.model_name for r in plan_room(120, 60, residents, evict=True, device="n:dram")] == [
        "old", "new"]
    with pytest.raises(InsufficientMemory) as exc:
        plan_room(80, 60, residents, evict=False, device="n:dram")
    assert exc.value.details == {"required": 80, "available": 60, "device": "n:dram"}
    with pytest.raises(InsufficientMemory):
        plan_room(200, 60, residents, evict=True, device="n:dram")
    assert plan_room(10**12, None, residents, evict=False, device="n:dram") == []


def test_free_bytes_and_source_choice():
    assert free_bytes(1000, None, 0) == 1000
    assert free_bytes(1000, 300, 100) == 200
    assert free_bytes(None, 300, 400) == 0
    assert free_bytes(None, None, 5) is None
    copies = [("node1", "disk"), ("node2", "dram"), ("node1", "dram")]
    assert choose_source(copies, "node1") == ("node1", "dram")
    assert choose_source([("node1", "disk"), ("node2", "dram")], "node3") == ("node2", "dram")
    assert choose_source([], "node1") is None


def test_sources(tmp_path):
    root = tmp_path / "models"
    root.mkdir()
    (root / "m.safetensors").write_bytes(b"x")
    (tmp_path / "secret.safetensors").write_bytes(b"x")
    os.symlink(tmp_path / "secret.safetensors", root / "link.safetensors")
    roots = [str(root)]
    assert parse_source("builtin://mlp?in=8", roots).kind == "builtin"
    assert parse_source("https://example.org/m.safetensors", roots).kind == "http"
    src = parse_source(f"file://{root}/m.safetensors", roots)
    assert src.kind == "file" and src.path == str(root / "m.safetensors")
    for bad in ("ftp://h/m", "s3://bucket/m", "m.safetensors"):
        with pytest.raises(InvalidRequest) as exc:
            parse_source(bad, roots)
        assert exc.value.details["field"] == "source_url"
    for outside in (f"file://{tmp_path}/secret.safetensors",
                    f"file://{root}/../secret.safetensors",
                    f"file://{root}/link.safetensors"):
        with pytest.raises(Forbidden):
            parse_source(outside, roots)
    with pytest.raises(NotFound):
        parse_source(f"file://{root}/missing.safetensors", roots)
    with pytest.raises(InvalidRequest):
        parse_source("http:///nohost", roots)
