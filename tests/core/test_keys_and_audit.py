"""Keys, scopes, quotas and the audit log as domain objects over a real SQLite file."""

from __future__ import annotations

import dataclasses
import sqlite3
import time

import pytest

from gswarm_jupyter.core.access import Access, Caller
from gswarm_jupyter.core.audit import AuditEvent, AuditLog, should_log
from gswarm_jupyter.core.chunks import ChunkRegistry
from gswarm_jupyter.core.db import Database
from gswarm_jupyter.core.errors import (
    Conflict,
    Forbidden,
    InsufficientMemory,
    InvalidRequest,
    RateLimitExceeded,
    Unauthorized,
)
from gswarm_jupyter.core.key_usage import KeyUsage
from gswarm_jupyter.core.keys import KeyStore
from gswarm_jupyter.core.modelregistry import ModelRegistry
from gswarm_jupyter.core.ratelimit import RateLimiter
from gswarm_jupyter.core.scopes import granted, normalize, required
from gswarm_jupyter.core.tasks import TaskQueue


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path):
    database = Database(tmp_path / "state.sqlite3")
    database.migrate()
    yield database
    database.close()


def test_scopes_expand_wildcards_and_refuse_unknown_ones():
    assert normalize(["gswarm:models:*", "gswarm:data:read", "gswarm:queue"]) == [
        "gswarm:data:read", "gswarm:models:read", "gswarm:models:write", "gswarm:queue:read",
        "gswarm:queue:write",
    ]
    for bad in ("gswarm:gpus:read", "models:read", "gswarm:models:delete", "gswarm"):
        with pytest.raises(InvalidRequest) as info:
            normalize(["gswarm:data:read", bad])
        assert info.value.details["field"] == "scopes[1]"


def test_roles_bundle_scopes_as_api_md_says():
    viewer, user, admin = (granted([], [r]) for r in ("viewer", "user", "admin"))
    assert "gswarm:cluster:read" in viewer and "gswarm:admin:read" not in viewer
    assert not any(s.endswith(":write") for s in viewer)
    assert "gswarm:compute:write" in user and "gswarm:cluster:write" not in user
    assert "gswarm:admin:write" not in user and "gswarm:admin:write" in admin
    assert required(("compute", "models"), "POST") == {
        "gswarm:compute:write", "gswarm:models:write"
    }
    assert required(("queue",), "GET") == {"gswarm:queue:read"}


def test_a_secret_is_shown_once_and_stored_only_as_a_hash(db, tmp_path):
    keys = KeyStore(db)
    key, secret = keys.create("ci", ["gswarm:models:read"], ["viewer"])
    assert secret.startswith("gsk_") and len(secret) > 40
    raw = (tmp_path / "state.sqlite3").read_bytes()
    assert secret.encode() not in raw and secret[17:].encode() not in raw
    row = db.one("SELECT * FROM api_keys WHERE key_id = ?", (key.key_id,))
    assert row is not None and secret not in tuple(str(v) for v in row)
    assert "secret" not in key.record() and "secret_hash" not in key.record()
    assert keys.authenticate(secret).key_id == key.key_id


def test_wrong_revoked_and_expired_keys_are_unauthorized(db):
    clock = Clock()
    keys = KeyStore(db, clock)
    key, secret = keys.create("short", [], ["viewer"], expires_at=clock.now + 10)
    other, other_secret = keys.create("other", [], ["user"])
    with pytest.raises(Unauthorized):
        keys.authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    with pytest.raises(Unauthorized):
        keys.authenticate("gsk_000000000000_nothing")
    keys.authenticate(secret)
    clock.now += 10
    with pytest.raises(Unauthorized) as info:
        keys.authenticate(secret)
    assert info.value.details["reason"] == "expired"
    told = []
    keys.watch(other.key_id, lambda: told.append("closed"))
    keys.revoke(other.key_id)
    assert told == ["closed"] and keys.watching(other.key_id) == 0
    with pytest.raises(Unauthorized) as info:
        keys.authenticate(other_secret)
    assert info.value.details["reason"] == "revoked"


def test_an_expiry_in_the_past_and_a_taken_name_are_refused(db):
    keys = KeyStore(db, Clock(time.time()))
    with pytest.raises(InvalidRequest):
        keys.create("old", [], ["viewer"], expires_at="2000-01-01T00:00:00Z")
    # past the last ISO time, or no time at all: stored, they broke every later listing (fuzz)
    for never in (1.5e156, float("inf"), float("nan")):
        with pytest.raises(InvalidRequest):
            keys.create("never", [], ["viewer"], expires_at=never)
    assert keys.all() == []
    key, _ = keys.create("same", [], ["viewer"])
    with pytest.raises(Conflict):
        keys.create("same", [], ["viewer"])
    keys.revoke(key.key_id)
    keys.create("same", [], ["viewer"])  # a revoked key's name is free again


def test_keys_and_revocations_outlive_the_store(db, tmp_path):
    keys = KeyStore(db)
    kept, kept_secret = keys.create("kept", ["gswarm:data:*"], [],
                                    quotas={"requests_per_minute": 5})
    gone, gone_secret = keys.create("gone", [], ["admin"])
    keys.revoke(gone.key_id)
    again = Database(tmp_path / "state.sqlite3")
    reloaded = KeyStore(again)
    reloaded.load()
    assert reloaded.authenticate(kept_secret).quota("requests_per_minute") == 5
    assert reloaded.get(kept.key_id).held == frozenset({"gswarm:data:read", "gswarm:data:write"})
    with pytest.raises(Unauthorized):
        reloaded.authenticate(gone_secret)
    again.close()


def test_the_audit_log_is_append_only_and_filters(db):
    clock = Clock()
    audit = AuditLog(db, clock)
    audit.append(AuditEvent("key:key_a", "key_a", "POST", "/gswarm/api/v1/data", ("data",),
                            "write", 201))
    clock.now += 60
    audit.append(AuditEvent("key:key_b", "key_b", "DELETE", "/gswarm/api/v1/models/m",
                            ("models",), "write", 403))
    audit.append(AuditEvent("key:key_b", "key_b", "POST", "/gswarm/compute/v1/models",
                            ("compute", "models"), "write", 201))
    events, total = audit.query()
    assert total == 3 and [e["decision"] for e in events] == ["allowed", "denied", "allowed"]
    assert audit.query(key_id="key_b")[1] == 2
    assert audit.query(resource="models")[1] == 2
    assert audit.query(resource="mode")[1] == 0
    assert audit.query(decision="denied")[0][0]["status"] == 403
    full = AuditEvent("key:key_b", "key_b", "POST", "/gswarm/api/v1/data", ("data",), "write", 507)
    assert full.decision == "allowed"  # a full device refuses anyone: no verdict on the key
    assert dataclasses.replace(full, quota_refused=True).decision == "denied"  # its own quota
    assert audit.query(since=str(clock.now))[1] == 2
    assert audit.query(until=str(clock.now - 30))[1] == 1
    assert len(audit.query(page=2, per_page=2)[0]) == 1
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE audit_events SET decision = 'allowed'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM audit_events")
    assert should_log("write", 200) and should_log("read", 403) and not should_log("read", 200)
    assert should_log("read", 200, reads=True)


def make_access(db, **kwargs):
    queue = TaskQueue(2)
    usage = KeyUsage(db, queue, ChunkRegistry(db), ModelRegistry(db))
    access = Access(KeyStore(db), usage, AuditLog(db), RateLimiter(1000, 100, Clock()), **kwargs)
    return access, queue


def test_scopes_quotas_and_the_owner_at_the_gate(db):
    access, queue = make_access(db)
    _, secret = access.keys.create("viewer", [], ["viewer"],
                                   quotas={"requests_per_minute": 2, "max_concurrent_tasks": 1})
    caller = access.authenticate(secret)
    access.allow(caller, ("models",), "GET")
    with pytest.raises(Forbidden) as info:
        access.allow(caller, ("compute", "models"), "POST")
    assert info.value.details["required"] == ["gswarm:compute:write", "gswarm:models:write"]
    assert [access.rate(caller).allowed for _ in range(3)] == [True, True, False]
    assert access.key_usage(caller.key_id)["requests_last_minute"] == 2

    owner = Caller("token:abc", None, True)
    # The owner is counted (headers on every response) but not refused by default.
    assert all(access.rate(owner).allowed for _ in range(access.limiter.burst + 5))
    access.allow(owner, ("admin",), "DELETE")
    limited, _ = make_access(db, limit_owner=True)
    assert not all(limited.rate(owner).allowed for _ in range(limited.limiter.burst + 5))

    task = queue.submit("copy", "m")
    access.made(caller, {"task_id": task.task_id}, 202, False)
    with pytest.raises(RateLimitExceeded) as info:
        access.before_task(caller)
    assert info.value.details["quota"] == 1
    queue.cancel(task.task_id)
    access.before_task(caller)
    assert access.key_usage(caller.key_id)["concurrent_tasks"] == 0


def test_bytes_placed_are_measured_from_the_registry(db):
    access, _ = make_access(db)
    _, secret = access.keys.create("placer", [], ["user"], quotas={"max_bytes": 1000})
    caller = access.authenticate(secret)
    chunks = ChunkRegistry(db)
    chunks.create("chunk-00000000000a", chunk_type="input", fmt="bytes", size=600, shape=None,
                  dtype=None, created_by=None)
    access.made(caller, {"chunk_id": "chunk-00000000000a", "size": 600}, 201, False)
    access.before_placing(caller, 400)
    with pytest.raises(InsufficientMemory) as info:
        access.before_placing(caller, 401)
    assert info.value.status == 507
    assert info.value.details == {"quota": 1000, "used": 600, "required": 401}
    chunks.delete("chunk-00000000000a")
    assert access.key_usage(caller.key_id)["bytes_placed"] == 0
