"""The platform's routes as API.md fixes them: envelope, auth, errors, rate limits, OpenAPI."""

from __future__ import annotations

import pytest

from gswarm_jupyter.core import records
from gswarm_jupyter.server.handlers import all_routes

ENVELOPED = {
    "gswarm/api/v1/health": records.Health,
    "gswarm/api/v1/metrics": records.ClusterMetrics,
    "gswarm/api/v1/nodes": records.NodeList,
    "gswarm/api/v1/nodes/node1": records.NodeDetail,
    "gswarm/api/v1/nodes/node1/resources": records.NodeResources,
    "gswarm/compute/v1/health": records.ComputeHealth,
}
ALL_GETS = [*ENVELOPED, "gswarm/api/v1/openapi.json", "gswarm/metrics"]


@pytest.fixture(params=["/", "/a%40b/"], ids=["root", "base_url"])
def jp_base_url(request):
    return request.param


async def test_every_route_answers_a_token_holder_under_any_base_url(api):
    for path in ALL_GETS:
        status, body, headers = await api("GET", path)
        assert status == 200, (path, body)
        assert headers["X-Ratelimit-Limit"].isdigit()  # counted on every response, never refused
        if path in ENVELOPED:
            assert body["success"] is True and body["error"] is None and body["timestamp"]
            ENVELOPED[path].model_validate(body["data"])


async def test_every_route_refuses_a_caller_without_a_token(api):
    for path in [*ALL_GETS, "gswarm/api/v1/nowhere"]:
        status, body, headers = await api("GET", path, token=False)
        assert status == 401, path
        assert body["success"] is False and body["data"] is None
        assert body["error"]["code"] == "UNAUTHORIZED"
        assert headers["X-Ratelimit-Remaining"].isdigit()


async def test_a_wrong_token_is_unauthorized(api):
    status, body, _ = await api("GET", "gswarm/api/v1/health", headers={"Authorization": "token nope"})
    assert status == 401 and body["error"]["code"] == "UNAUTHORIZED"


async def test_bearer_tokens_are_accepted(api, jp_serverapp):
    token = jp_serverapp.identity_provider.token
    status, _, _ = await api("GET", "gswarm/api/v1/health", headers={"Authorization": f"Bearer {token}"})
    assert status == 200


async def test_an_unauthenticated_write_is_401_not_an_xsrf_403(api):
    status, body, _ = await api("POST", "gswarm/api/v1/health", body={}, token=False)
    assert status == 401 and body["error"]["code"] == "UNAUTHORIZED"


async def test_health_reports_the_embedded_cluster(api):
    _, body, _ = await api("GET", "gswarm/api/v1/health")
    health = body["data"]
    assert health["status"] == "healthy" and health["reason"] is None
    assert health["nodes_online"] == health["nodes_total"] == 2
    assert health["scheduler"]["embedded"] is True
    assert health["scheduler"]["address"].startswith("tls://127.0.0.1:")  # mutual TLS only


async def test_nodes_carry_real_capacities(api):
    _, body, _ = await api("GET", "gswarm/api/v1/nodes")
    assert [n["node_id"] for n in body["data"]["nodes"]] == ["node1", "node2"]
    _, body, _ = await api("GET", "gswarm/api/v1/nodes/node1")
    devices = body["data"]["devices"]
    assert devices["dram"]["total"] == 8 * 1024**3  # the configured worker memory limit (tests/conftest.py)
    assert devices["disk"]["total"] > devices["disk"]["available"] > 0
    assert body["data"]["capabilities"]["gpus"] == []  # no GPU here: none invented


async def test_node_resources_show_storage_and_cpu(api):
    _, body, _ = await api("GET", "gswarm/api/v1/nodes/node2/resources")
    cpu = body["data"]["compute"]["cpu"]
    assert cpu["cores"] >= 1 and 0.0 <= cpu["usage"] <= 1.0
    assert set(body["data"]["storage"]) == {"disk", "dram"}


async def test_unknown_node_is_not_found(api):
    for path in ["gswarm/api/v1/nodes/node9", "gswarm/api/v1/nodes/node9/resources"]:
        status, body, _ = await api("GET", path)
        assert status == 404 and body["error"]["code"] == "NOT_FOUND"


async def test_unknown_routes_under_gswarm_answer_the_envelope(api):
    for method, path in [("GET", "gswarm/api/v1/nowhere"), ("POST", "gswarm/elsewhere/x"), ("DELETE", "gswarm/api/v1/nodes/node1/x")]:
        status, body, _ = await api(method, path, body={} if method == "POST" else None)
        assert status == 404, path
        assert body["error"]["code"] == "NOT_FOUND"


async def test_a_method_a_route_does_not_serve_is_refused_in_the_envelope(api):
    status, body, _ = await api("DELETE", "gswarm/api/v1/health")
    assert status == 405 and body["error"]["code"] == "INVALID_REQUEST"


@pytest.mark.parametrize(
    "params, field",
    [({"page": "0"}, "page"), ({"per_page": "501"}, "per_page"), ({"page": "two"}, "page"), ({"per_page": "0"}, "per_page")],
)
async def test_bad_query_parameters_are_invalid_requests_naming_the_field(api, params, field):
    status, body, _ = await api("GET", "gswarm/api/v1/nodes", params=params)
    assert status == 400
    assert body["error"]["code"] == "INVALID_REQUEST"
    assert body["error"]["details"]["field"] == field


async def test_nodes_paginate(api):
    _, body, _ = await api("GET", "gswarm/api/v1/nodes", params={"per_page": "1", "page": "2"})
    assert body["data"]["total"] == 2 and body["data"]["page"] == 2
    assert [n["node_id"] for n in body["data"]["nodes"]] == ["node2"]


async def test_metrics_json_counts_requests_and_measures_devices(api):
    await api("GET", "gswarm/api/v1/nodes/node9")
    _, body, _ = await api("GET", "gswarm/api/v1/metrics")
    data = body["data"]
    assert data["requests"]["404"] == 1 and data["requests"]["total"] >= 1
    dram = data["nodes"]["node1"]["devices"]["dram"]
    assert 0.0 < dram["memory_utilization"] < 1.0
    assert set(data["tasks"]) == {"pending", "running", "completed", "failed", "cancelled"}


async def test_prometheus_text_has_node_and_device_labels(api):
    status, body, headers = await api("GET", "gswarm/metrics")
    assert headers["Content-Type"].startswith("text/plain")
    text = body["text"]
    assert 'gswarm_node_up{node="node1"} 1.0' in text
    assert 'gswarm_device_memory_total_bytes{device="dram",node="node2"}' in text


async def test_openapi_documents_every_route(api):
    _, doc, _ = await api("GET", "gswarm/api/v1/openapi.json")
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {route.path for route in all_routes()}
    health = doc["paths"]["/gswarm/api/v1/health"]["get"]
    assert {"200", "401", "403", "429"} <= set(health["responses"])
    assert "Health" in doc["components"]["schemas"]
    params = doc["paths"]["/gswarm/api/v1/nodes"]["get"]["parameters"]
    assert {p["name"] for p in params} == {"page", "per_page"}


async def test_every_reference_in_the_openapi_document_resolves(api):
    _, doc, _ = await api("GET", "gswarm/api/v1/openapi.json")
    refs = set()

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.add(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    schemas = doc["components"]["schemas"]
    missing = [r for r in refs if r.rsplit("/", 1)[-1] not in schemas]
    assert refs and missing == []


class TestRateLimit:
    @pytest.fixture
    def gswarm_config(self, gswarm_config):
        gswarm_config.update(rate_limit_per_minute=1000, rate_limit_burst=3, rate_limit_owner=True)
        return gswarm_config

    @pytest.fixture
    def jp_base_url(self):
        return "/"

    async def test_a_burst_beyond_the_limit_is_429_with_retry_after(self, api):
        # 3 a second: of 7 quick requests at most 6 fit, even across a second boundary.
        answers = [await api("GET", "gswarm/api/v1/health") for _ in range(7)]
        statuses = [a[0] for a in answers]
        assert statuses[:3] == [200, 200, 200] and 429 in statuses
        status, body, headers = answers[statuses.index(429)]
        assert body["error"]["code"] == "RATE_LIMIT_EXCEEDED"
        assert headers["Retry-After"] == "1"
        assert [a[2]["X-Ratelimit-Remaining"] for a in answers[:3]] == ["999", "998", "997"]


class TestRateLimitOff:
    @pytest.fixture
    def gswarm_config(self, gswarm_config):
        gswarm_config.update(rate_limit_per_minute=0, rate_limit_burst=0)
        return gswarm_config

    @pytest.fixture
    def jp_base_url(self):
        return "/"

    async def test_zero_disables_the_limit_and_its_headers(self, api):
        for _ in range(5):
            status, _, headers = await api("GET", "gswarm/api/v1/health")
            assert status == 200 and "X-Ratelimit-Limit" not in headers


class TestAuthorizer:
    @pytest.fixture
    def jp_server_config(self, jp_server_config):
        jp_server_config["ServerApp"]["authorizer_class"] = "tests.server.support.ReadOnlyAuthorizer"
        jp_server_config["ServerApp"]["jpserver_extensions"]["tests.server.support"] = True
        return jp_server_config

    @pytest.fixture
    def jp_base_url(self):
        return "/"

    async def test_a_refusal_of_the_authorizer_is_403_forbidden(self, api):
        assert (await api("GET", "gswarm/api/v1/health"))[0] == 200
        status, body, _ = await api("GET", "gswarm/compute/v1/health")
        assert status == 403 and body["error"]["code"] == "FORBIDDEN"
        assert body["error"]["details"] == {"action": "read", "resource": "gswarm:compute"}
        status, body, _ = await api("POST", "gswarm-test/echo", body={"name": "x"})
        assert status == 403 and body["error"]["code"] == "FORBIDDEN"


class TestBodies:
    @pytest.fixture
    def jp_server_config(self, jp_server_config):
        jp_server_config["ServerApp"]["jpserver_extensions"]["tests.server.support"] = True
        return jp_server_config

    @pytest.fixture
    def jp_base_url(self):
        return "/"

    async def test_a_valid_body_passes(self, api):
        status, body, _ = await api("POST", "gswarm-test/echo", body={"name": "x", "count": 2})
        assert status == 201 and body["data"] == {"name": "x", "count": 2}

    @pytest.mark.parametrize(
        "raw, field",
        [
            (b"{not json", "body"),
            (b"[1, 2]", "body"),
            (b'{"name": "x", "colour": "red"}', "colour"),
            (b'{"name": "x", "count": "many"}', "count"),
            (b'{"count": 1}', "name"),
        ],
        ids=["malformed", "not-an-object", "unknown-field", "wrong-type", "missing"],
    )
    async def test_bad_bodies_are_invalid_requests_naming_the_field(self, api, raw, field):
        status, body, _ = await api("POST", "gswarm-test/echo", raw_body=raw)
        assert status == 400
        assert body["error"]["code"] == "INVALID_REQUEST"
        assert body["error"]["details"]["field"] == field
