"""API keys through a real Jupyter server: scopes per route and role, revocation and expiry,
quotas, the audit log, WebSocket streams, and that a key is never a Jupyter identity."""

from __future__ import annotations

import asyncio
import base64
import re
import time

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from gswarm_jupyter.core.scopes import RESOURCES
from gswarm_jupyter.server.handlers import all_routes
from gswarm_jupyter.server.openapi import build

KEYS = "gswarm/api/v1/keys"
WRITABLE_BY_USER = {"models", "data", "queue", "compute", "profiler"}
# Values for path parameters that name nothing, so that an allowed call changes nothing.
NOWHERE = {
    "name": "no-such-model", "model_id": "no-such-model", "node": "node9",
    "device": "node1:disk", "chunk_id": "chunk-000000000000", "task_id": "no-such-task",
    "request_id": "req_none", "service_id": "no-such-service", "session_id": "sess_none",
    "allocation_id": "alloc_none", "gpu_id": "vgpu-none", "key_id": "key_000000000000",
}


def operations() -> list[tuple[str, str, tuple[str, ...]]]:
    """(method, path relative to the base url, resources) of every documented operation."""
    return [
        (method.upper(), re.sub(r"\{(\w+)\}", lambda m: NOWHERE[m.group(1)], route.path)[1:],
            route.resources(method))
        for route in all_routes() for method in route.ops
    ]


@pytest.fixture
def gswarm_config(gswarm_config):
    # the walks below send more than 100 requests a second, and refused keys count against
    # their address: no per-second burst limit here (TestRates sets one)
    gswarm_config.update(rate_limit_burst=0)
    return gswarm_config


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def make_key(api, **body) -> tuple[str, dict]:
    status, answer, headers = await api("POST", KEYS, body={"scopes": [], **body})
    assert status == 201, answer
    assert headers["Location"].endswith(f"/keys/{answer['data']['key_id']}")
    return answer["data"]["secret"], answer["data"]


def test_every_route_declares_what_it_touches():
    document = build(all_routes())
    for route in all_routes():
        for method in route.ops:
            resources = route.resources(method)
            assert resources, f"{method.upper()} {route.path} declares no resource"
            assert set(resources) <= set(RESOURCES), (route.path, resources)
            action = "read" if method == "get" else "write"
            assert document["paths"][route.path][method]["x-gswarm-scopes"] == sorted(
                f"gswarm:{r}:{action}" for r in resources
            )


def allowed_for(role: str, method: str, resources: tuple[str, ...]) -> bool:
    """API.md section 7, written out: viewer reads all but admin, user also writes the five
    working resources, admin does everything."""
    if role == "admin":
        return True
    if "admin" in resources:
        return False
    if method == "GET":
        return True
    return role == "user" and set(resources) <= WRITABLE_BY_USER


async def test_each_role_against_every_route(api):
    secrets_by_role = {role: (await make_key(api, name=role, roles=[role]))[0]
                       for role in ("viewer", "user", "admin")}
    checked = 0
    for method, path, resources in operations():
        for role, secret in secrets_by_role.items():
            status, body, _ = await api(method, path, headers=bearer(secret))
            where = f"{role}: {method} {path} -> {status} {body}"
            assert status != 401, where
            if allowed_for(role, method, resources):
                assert status != 403, where
            else:
                assert status == 403, where
                if "/ws/" not in path:  # a refused handshake has no details
                    action = "read" if method == "GET" else "write"
                    assert body["error"]["details"]["required"] == sorted(
                        f"gswarm:{r}:{action}" for r in resources
                    ), where
            checked += 1
    assert checked >= 3 * 60


async def test_a_call_touching_two_resources_needs_both_scopes(api):
    secret, _ = await make_key(api, name="half", scopes=["gswarm:compute:*"])
    status, body, _ = await api("POST", "gswarm/compute/v1/models", body={"model_id": "x"},
                                headers=bearer(secret))
    assert status == 403 and body["error"]["code"] == "FORBIDDEN"
    assert body["error"]["details"]["missing"] == ["gswarm:models:write"]
    status, _, _ = await api("GET", "gswarm/compute/v1/models", headers=bearer(secret))
    assert status == 200
    status, body, _ = await api("GET", "gswarm/api/v1/nowhere", headers=bearer(secret))
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"


class TestRevokedAndExpired:
    async def test_no_route_accepts_a_revoked_or_an_expired_key(self, api):
        revoked, record = await make_key(api, name="revoked", roles=["admin"])
        expiring, _ = await make_key(api, name="expiring", roles=["admin"],
                                     expires_at=time.time() + 1.5)
        assert (await api("GET", "gswarm/api/v1/health", headers=bearer(revoked)))[0] == 200
        assert (await api("GET", "gswarm/api/v1/health", headers=bearer(expiring)))[0] == 200
        status, body, _ = await api("DELETE", f"{KEYS}/{record['key_id']}")
        assert status == 200 and body["data"]["revoked"] is True
        # revoked, not gone: its record and its usage stay readable to an admin (the audit trail)
        status, body, _ = await api("GET", f"{KEYS}/{record['key_id']}")
        assert status == 200 and body["data"]["revoked"] is True
        assert (await api("GET", f"{KEYS}/{record['key_id']}/usage"))[0] == 200
        await asyncio.sleep(1.6)
        for secret, reason in ((revoked, "revoked"), (expiring, "expired")):
            for method, path, _ in operations():
                status, body, _ = await api(method, path, headers=bearer(secret))
                assert status == 401, (reason, method, path, status)
                if "/ws/" not in path:
                    assert body["error"]["code"] == "UNAUTHORIZED"
                    assert body["error"]["details"]["reason"] == reason
        status, body, _ = await api("GET", "gswarm/api/v1/health", headers=bearer("gsk_nonsense"))
        assert status == 401 and body["error"]["details"]["reason"] == "unknown"
        # a revoked key's refusals are denials in the audit log under its own id
        status, body, _ = await api("GET", "gswarm/api/v1/audit",
                                    params={"key_id": record["key_id"], "decision": "denied",
                                            "per_page": 100})
        assert status == 200
        events = body["data"]["events"]
        assert {e["status"] for e in events} == {401} and len(events) >= 10


async def test_a_key_never_opens_a_kernel_a_terminal_or_a_file(api, jp_serverapp):
    secret, _ = await make_key(api, name="everything", roles=["admin"])
    for method, path, body in (
        ("GET", "api/kernels", None),
        ("POST", "api/kernels", {"name": "python3"}),
        ("GET", "api/sessions", None),
        ("GET", "api/terminals", None),
        ("POST", "api/terminals", {}),
        ("GET", "api/contents", None),
        ("PUT", "api/contents/leak.txt", {"type": "file", "format": "text", "content": "x"}),
    ):
        status, _, _ = await api(method, path, body=body, headers=bearer(secret))
        assert status in (401, 403), (method, path, status)
    assert jp_serverapp.kernel_manager.list_kernel_ids() == []
    status, body, _ = await api("GET", "api/contents")
    assert status == 200 and "leak.txt" not in {c["name"] for c in body["content"]}


async def test_a_revoked_keys_websocket_is_closed(api, jp_http_port, jp_base_url):
    secret, record = await make_key(api, name="watcher", roles=["viewer"])
    url = f"ws://127.0.0.1:{jp_http_port}{jp_base_url}gswarm/api/v1/ws/tasks"
    conn = await websocket_connect(HTTPRequest(url, headers=bearer(secret)))
    try:
        await api("DELETE", f"{KEYS}/{record['key_id']}")
        message = await asyncio.wait_for(conn.read_message(), timeout=10)
        assert message is None and conn.close_code == 4401
    finally:
        conn.close()
    with pytest.raises(Exception, match="401"):
        await websocket_connect(HTTPRequest(url, headers=bearer(secret)))


async def test_a_key_without_the_stream_scope_cannot_subscribe(api, jp_http_port, jp_base_url):
    secret, _ = await make_key(api, name="data-only", scopes=["gswarm:data:read"])
    url = f"ws://127.0.0.1:{jp_http_port}{jp_base_url}gswarm/api/v1/ws/profiling"
    with pytest.raises(Exception, match="403"):
        await websocket_connect(HTTPRequest(url, headers=bearer(secret)))


async def clear_of_a_minute_edge(margin: float = 10.0) -> None:
    """Wait for the next minute when fewer than `margin` seconds of this one are left: the
    limiter counts in calendar minutes, and requests on both sides of an edge are counted apart
    (a CI run saw 200, 200, 200 for a rate of 2 a minute)."""
    left = 60.0 - time.time() % 60.0
    if left < margin:
        await asyncio.sleep(left + 0.05)


class TestRates:
    @pytest.fixture
    def gswarm_config(self, gswarm_config):
        gswarm_config.update(rate_limit_per_minute=1000, rate_limit_burst=3)
        return gswarm_config

    async def test_the_owner_is_not_throttled_but_a_key_has_its_rate(self, api):
        answers = [await api("GET", "gswarm/api/v1/health") for _ in range(8)]
        assert [a[0] for a in answers] == [200] * 8
        # Counted for the contract's headers on every response, never refused.
        assert all(a[2]["X-Ratelimit-Limit"] == "1000" for a in answers)
        secret, record = await make_key(api, name="slow", roles=["viewer"],
                                        quotas={"requests_per_minute": 2})
        await clear_of_a_minute_edge()
        answers = [await api("GET", "gswarm/api/v1/nodes", headers=bearer(secret))
                   for _ in range(3)]
        assert [a[0] for a in answers] == [200, 200, 429]
        _, body, headers = answers[2]
        assert body["error"]["code"] == "RATE_LIMIT_EXCEEDED" and int(headers["Retry-After"]) >= 1
        assert answers[0][2]["X-Ratelimit-Limit"] == "2"
        status, body, _ = await api("GET", f"{KEYS}/{record['key_id']}/usage")
        assert status == 200 and body["data"]["requests_last_minute"] == 2
        assert body["data"]["allocations"] == []


async def test_a_key_at_its_task_quota_is_refused_a_new_task(api):
    chunk = (await api("POST", "gswarm/api/v1/data", body={
        "data": base64.b64encode(b"x" * 200_000).decode(), "device": "node1:dram"}))[1]["data"]
    secret, record = await make_key(api, name="one-task", roles=["user"],
                                    quotas={"max_concurrent_tasks": 1})
    move = {"target_device": "node1:disk", "bandwidth_limit": 1000}  # 200 s at this rate
    status, body, _ = await api("POST", f"gswarm/api/v1/data/{chunk['chunk_id']}/move",
                                body=move, headers=bearer(secret))
    assert status == 202, body
    task_id = body["data"]["task_id"]
    usage = (await api("GET", f"{KEYS}/{record['key_id']}/usage"))[1]["data"]
    assert usage["concurrent_tasks"] == 1
    status, body, _ = await api("POST", f"gswarm/api/v1/data/{chunk['chunk_id']}/transfer",
                                body={"target_node": "node2", "target_device": "dram"},
                                headers=bearer(secret))
    assert status == 429 and body["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert body["error"]["details"]["quota"] == 1 and body["error"]["details"]["used"] == 1
    await api("POST", f"gswarm/api/v1/queue/tasks/{task_id}/cancel")
    for _ in range(100):
        usage = (await api("GET", f"{KEYS}/{record['key_id']}/usage"))[1]["data"]
        if usage["concurrent_tasks"] == 0:
            break
        await asyncio.sleep(0.1)
    assert usage["concurrent_tasks"] == 0


async def test_a_key_past_its_byte_quota_is_507_with_details(api):
    secret, record = await make_key(api, name="small", roles=["user"],
                                    quotas={"max_bytes": 1000})
    chunk = {"data": base64.b64encode(b"y" * 600).decode(), "device": "node1:dram"}
    status, body, _ = await api("POST", "gswarm/api/v1/data", body=chunk, headers=bearer(secret))
    assert status == 201, body
    status, body, _ = await api("POST", "gswarm/api/v1/data", body=chunk, headers=bearer(secret))
    assert status == 507 and body["error"]["code"] == "INSUFFICIENT_MEMORY"
    assert body["error"]["details"] == {"quota": 1000, "used": 600, "required": 600}
    usage = (await api("GET", f"{KEYS}/{record['key_id']}/usage"))[1]["data"]
    assert usage["bytes_placed"] == 600 and usage["quotas"]["max_bytes"] == 1000
    # the quota's refusal is a denial in the audit log, as a 403 or a 429 is
    status, body, _ = await api("GET", "gswarm/api/v1/audit", params={"key_id": record["key_id"]})
    assert [(e["status"], e["decision"]) for e in body["data"]["events"]] == [
        (201, "allowed"), (507, "denied")]


async def test_keys_are_listed_without_secrets_and_bad_specs_refused(api):
    secret, record = await make_key(api, name="listed", scopes=["gswarm:models:*"],
                                    roles=["viewer"], expires_at="2999-01-01T00:00:00Z")
    status, body, _ = await api("GET", KEYS)
    assert status == 200 and body["data"]["total"] >= 1
    listed = {k["key_id"]: k for k in body["data"]["keys"]}[record["key_id"]]
    assert "secret" not in listed and secret not in str(body)
    assert listed["scopes"] == ["gswarm:models:read", "gswarm:models:write"]
    assert listed["expires_at"].startswith("2999-01-01") and listed["revoked"] is False
    for bad, field in (({"name": "x", "scopes": ["gswarm:gpus:read"]}, "scopes[0]"),
                       ({"name": "x", "roles": ["root"]}, "roles.0"),
                       ({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
                       ({"name": "x", "expires_at": 1.5e156}, "expires_at")):
        status, body, _ = await api("POST", KEYS, body=bad)
        assert status == 400 and body["error"]["code"] == "INVALID_REQUEST", (bad, body)
    assert (await api("GET", KEYS))[0] == 200  # nothing a refused key left breaks the listing
    status, body, _ = await api("POST", KEYS, body={"name": "listed"})
    assert status == 409
    assert (await api("GET", f"{KEYS}/key_000000000000"))[0] == 404
    viewer_secret, _ = await make_key(api, name="viewer", roles=["viewer"])
    status, body, _ = await api("POST", KEYS, body={"name": "escalate", "roles": ["admin"]},
                                headers=bearer(viewer_secret))
    assert status == 403 and body["error"]["details"]["required"] == ["gswarm:admin:write"]


async def test_writes_denials_and_key_changes_are_audited_reads_are_not(api):
    secret, record = await make_key(api, name="audited", roles=["user"])
    key_id = record["key_id"]
    chunk = {"data": base64.b64encode(b"z" * 10).decode(), "device": "node1:dram"}
    assert (await api("POST", "gswarm/api/v1/data", body=chunk, headers=bearer(secret)))[0] == 201
    assert (await api("GET", "gswarm/api/v1/data", headers=bearer(secret)))[0] == 200
    assert (await api("GET", KEYS, headers=bearer(secret)))[0] == 403
    status, body, _ = await api("GET", "gswarm/api/v1/audit", params={"key_id": key_id})
    assert status == 200
    events = body["data"]["events"]
    assert [(e["method"], e["resource"], e["decision"], e["status"]) for e in events] == [
        ("POST", "data", "allowed", 201), ("GET", "admin", "denied", 403),
    ]
    assert events[0]["identity"] == f"key:{key_id}" and events[0]["action"] == "write"
    assert events[0]["route"].endswith("/gswarm/api/v1/data")
    made = (await api("GET", "gswarm/api/v1/audit", params={"resource": "admin",
                                                            "decision": "allowed"}))[1]["data"]
    assert any(e["method"] == "POST" and e["route"].endswith("/keys") and e["key_id"] is None
               and e["identity"].startswith("token:") for e in made["events"])
    denied = (await api("GET", "gswarm/api/v1/audit", params={"decision": "denied"}))[1]["data"]
    assert all(e["decision"] == "denied" for e in denied["events"]) and denied["total"] >= 1
    status, body, _ = await api("GET", "gswarm/api/v1/audit", params={"decision": "maybe"})
    assert status == 400


class TestAuditReads:
    @pytest.fixture
    def gswarm_config(self, gswarm_config):
        gswarm_config.update(audit_reads=True)
        return gswarm_config

    async def test_reads_are_audited_when_asked(self, api):
        secret, record = await make_key(api, name="reader", roles=["viewer"])
        assert (await api("GET", "gswarm/api/v1/nodes", headers=bearer(secret)))[0] == 200
        events = (await api("GET", "gswarm/api/v1/audit",
                            params={"key_id": record["key_id"]}))[1]["data"]["events"]
        assert [(e["method"], e["action"], e["decision"]) for e in events] == [
            ("GET", "read", "allowed")
        ]
