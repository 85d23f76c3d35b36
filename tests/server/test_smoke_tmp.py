async def test_health(api):
    status, body, headers = await api("GET", "gswarm/api/v1/health")
    assert status == 200, body
    assert body["data"]["nodes_online"] == 2
    status, body, headers = await api("GET", "gswarm/api/v1/health", token=False)
    assert status == 401, body
