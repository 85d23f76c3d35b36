"""Profiler routes through a real Jupyter server with an embedded Dask cluster."""

import asyncio
import csv
import io
import json
import time

import grpc
import pytest
from tornado.httpclient import HTTPClientError

from gswarm_jupyter.core.profiler_api import (
    ClientList,
    FrameRecord,
    ProfilerStatus,
    SessionDetail,
    SessionList,
    SessionRecord,
    SessionSummary,
)
from gswarm_jupyter.profiler._proto import profiler_pb2 as pb
from gswarm_jupyter.profiler._proto import profiler_pb2_grpc as pb_grpc
from gswarm_jupyter.profiler.agent import Agent

P = "gswarm/api/v1/profiler"


async def _until(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_two_concurrent_sessions_with_their_own_frequency_and_nodes(api):
    status, body, headers = await api(
        "POST", f"{P}/profiling/start", body={"name": "fast", "sampling_frequency_ms": 50}
    )
    assert status == 201, body
    fast = SessionRecord.model_validate(body["data"])
    assert fast.status == "running" and fast.nodes is None and fast.sampling_frequency_ms == 50
    assert headers["Location"].endswith(f"/{P}/profiling/sessions/fast")
    status, body, _ = await api(
        "POST",
        f"{P}/profiling/start",
        body={"name": "slow", "sampling_frequency_ms": 100, "nodes": ["node2"]},
    )
    assert status == 201, body

    status, body, _ = await api("GET", f"{P}/status")
    state = ProfilerStatus.model_validate(body["data"])
    assert state.is_profiling and [s.name for s in state.active_sessions] == ["fast", "slow"]
    assert state.sampling_frequency_ms == 50
    await asyncio.sleep(1.0)

    status, body, _ = await api("POST", f"{P}/profiling/stop", body={"name": "fast"})
    assert status == 200, body
    fast_done = SessionSummary.model_validate(body["data"])
    status, body, _ = await api("POST", f"{P}/profiling/stop", body={"name": "slow"})
    slow_done = SessionSummary.model_validate(body["data"])
    assert fast_done.status == slow_done.status == "finished"
    assert set(fast_done.summary) == {"node1", "node2"} and set(slow_done.summary) == {"node2"}
    cpu = fast_done.summary["node1"]["host"]["cpu_utilization_ratio"]
    assert 0 <= cpu.mean <= cpu.p95 <= cpu.max <= 1 and cpu.count >= 5
    assert "gpu0" not in fast_done.summary["node1"]  # no NVML here: no GPU readings at all

    status, body, _ = await api("GET", f"{P}/profiling/sessions/fast")
    detail = SessionDetail.model_validate(body["data"])
    frames = [FrameRecord.model_validate(f) for f in detail.frames]
    assert len(frames) == detail.frames_collected
    for node in ("node1", "node2"):
        mine = [f for f in frames if f.node == node]
        stamps = [f.timestamp_unix_s for f in mine]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        # each sample has its own timestamp, about 50 ms apart (the slow session's do not count)
        spacing = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
        assert 0.03 < spacing < 0.2
    slow_frames = (await api("GET", f"{P}/profiling/sessions/slow"))[1]["data"]["frames"]
    assert {f["node"] for f in slow_frames} == {"node2"}
    node2_fast = sum(1 for f in frames if f.node == "node2")
    assert 0 < len(slow_frames) < node2_fast

    status, body, _ = await api("GET", f"{P}/profiling/sessions")
    listed = SessionList.model_validate(body["data"])
    assert [(s.name, s.status) for s in listed.sessions] == [
        ("fast", "finished"),
        ("slow", "finished"),
    ]


async def test_profiler_routes_refuse_bad_input(api):
    cases = [
        (
            {"name": "x", "sampling_frequency_ms": 9},
            400,
            "INVALID_REQUEST",
            "sampling_frequency_ms",
        ),
        (
            # past an hour; this one overflowed SQLite's INTEGER and answered 500 (a fuzz find)
            {"name": "x", "sampling_frequency_ms": 5177741074082648199004160},
            400,
            "INVALID_REQUEST",
            "sampling_frequency_ms",
        ),
        (
            {"name": "x", "sampling_frequency_ms": "often"},
            400,
            "INVALID_REQUEST",
            "sampling_frequency_ms",
        ),
        ({"name": "x", "colour": "red"}, 400, "INVALID_REQUEST", "colour"),
        ({}, 400, "INVALID_REQUEST", "name"),
        ({"name": "bad name!"}, 400, "INVALID_REQUEST", "name"),
        ({"name": "x", "metrics": ["fun_ratio"]}, 400, "INVALID_REQUEST", "metrics"),
        ({"name": "x", "nodes": ["node9"]}, 404, "NOT_FOUND", "nodes"),
    ]
    for body, code, error, field in cases:
        status, reply, _ = await api("POST", f"{P}/profiling/start", body=body)
        assert (status, reply["error"]["code"], reply["error"]["details"]["field"]) == (
            code,
            error,
            field,
        ), reply
    status, reply, _ = await api("POST", f"{P}/profiling/start", raw_body=b"{not json")
    assert status == 400 and reply["error"]["code"] == "INVALID_REQUEST"

    assert (
        await api(
            "POST", f"{P}/profiling/start", body={"name": "dup", "sampling_frequency_ms": 100}
        )
    )[0] == 201
    status, reply, _ = await api("POST", f"{P}/profiling/start", body={"name": "dup"})
    assert status == 409 and reply["error"]["code"] == "CONFLICT"
    status, reply, _ = await api("POST", f"{P}/profiling/stop", body={"name": "ghost"})
    assert status == 404 and reply["error"]["code"] == "NOT_FOUND"
    assert (await api("POST", f"{P}/profiling/stop", body={"name": "dup"}))[0] == 200
    status, reply, _ = await api("POST", f"{P}/profiling/stop", body={"name": "dup"})
    assert status == 409 and reply["error"]["code"] == "CONFLICT"
    status, reply, _ = await api("GET", f"{P}/profiling/sessions/ghost")
    assert status == 404 and reply["error"]["code"] == "NOT_FOUND"
    status, reply, _ = await api("GET", f"{P}/profiling/sessions/dup", params={"format": "xml"})
    assert status == 400 and reply["error"]["details"]["field"] == "format"
    status, reply, _ = await api("GET", f"{P}/profiling/sessions", params={"per_page": 0})
    assert status == 400

    for method, path, body in (
        ("GET", f"{P}/status", None),
        ("POST", f"{P}/profiling/start", {"name": "nope"}),
        ("POST", f"{P}/profiling/stop", {"name": "dup"}),
        ("GET", f"{P}/profiling/sessions", None),
        ("GET", f"{P}/clients", None),
        ("GET", f"{P}/metrics/latest", None),
    ):
        status, reply, _ = await api(method, path, body=body, token=False)
        assert status == 401 and reply["error"]["code"] == "UNAUTHORIZED", (method, path)
    assert [
        s["name"] for s in (await api("GET", f"{P}/profiling/sessions"))[1]["data"]["sessions"]
    ] == ["dup"]


async def test_downloads_clients_latest_and_prometheus(api, jp_fetch):
    await api(
        "POST",
        f"{P}/profiling/start",
        body={
            "name": "dl",
            "sampling_frequency_ms": 50,
            "metrics": ["cpu_utilization_ratio", "memory_used_bytes"],
            "tags": {"execution_count": 7},
        },
    )
    await asyncio.sleep(0.6)
    await api("POST", f"{P}/profiling/stop", body={"name": "dl"})

    status, reply, headers = await api(
        "GET", f"{P}/profiling/sessions/dl", params={"format": "csv"}
    )
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert 'filename="dl.csv"' in headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(reply["text"])))
    assert (
        rows
        and {r["node"] for r in rows} == {"node1", "node2"}
        and {r["device"] for r in rows} == {"host"}
    )
    assert all(
        0 <= float(r["cpu_utilization_ratio"]) <= 1 for r in rows if r["cpu_utilization_ratio"]
    )
    assert all(r["network_rx_bytes_per_s"] == "" for r in rows)  # not asked for: not recorded

    status, reply, _ = await api("GET", f"{P}/profiling/sessions/dl", params={"format": "json"})
    assert status == 200 and len(reply["data"]["frames"]) == reply["data"][
        "frames_collected"
    ] == len(rows)
    assert set(reply["data"]["frames"][0]["host"]) == {"cpu_utilization_ratio", "memory_used_bytes"}
    assert reply["data"]["tags"] == {"execution_count": 7}
    assert all(f["tags"] == {"execution_count": 7} for f in reply["data"]["frames"])

    response = await jp_fetch(*f"{P}/profiling/sessions/dl".split("/"), params={"format": "png"})
    assert response.code == 200 and response.headers["Content-Type"] == "image/png"
    assert response.body[:8] == b"\x89PNG\r\n\x1a\n" and len(response.body) > 1000

    status, reply, _ = await api("GET", f"{P}/clients")
    clients = ClientList.model_validate(reply["data"])
    assert [(c.client_id, c.status, c.gpus) for c in clients.clients] == [
        ("node1", "connected", []),
        ("node2", "connected", []),
    ]
    assert (await api("GET", f"{P}/status"))[1]["data"]["connected_clients"] == 2

    status, reply, _ = await api("GET", f"{P}/metrics/latest")
    latest = [FrameRecord.model_validate(f) for f in reply["data"]["frames"]]
    assert [f.node for f in latest] == ["node1", "node2"]
    assert all(f.host.memory_total_bytes and f.gpus == [] for f in latest)
    status, reply, _ = await api(
        "GET", f"{P}/metrics/latest", params={"nodes": "node2", "metrics": "cpu_utilization_ratio"}
    )
    assert [f["node"] for f in reply["data"]["frames"]] == ["node2"]
    assert set(reply["data"]["frames"][0]["host"]) == {"cpu_utilization_ratio"}

    status, reply, headers = await api("GET", "gswarm/metrics")
    text = reply["text"]
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    for node in ("node1", "node2"):
        assert f'gswarm_profiler_memory_total_bytes{{device="host",node="{node}"}}' in text
        assert f'gswarm_profiler_client_connected{{kind="dask",node="{node}"}} 1.0' in text
    assert 'gswarm_profiler_network_rx_bytes_per_second{device="host",node="node1"}' in text
    assert "gswarm_profiler_active_sessions 0.0" in text
    assert "gswarm_profiler_utilization_ratio" not in text  # no GPU: no GPU gauge


async def test_ws_profiling_streams_frames_and_filters(api, jp_ws_fetch):
    with pytest.raises(HTTPClientError) as err:
        await jp_ws_fetch("gswarm", "api", "v1", "ws", "profiling", headers={"Authorization": ""})
    assert err.value.code == 401
    ws = await jp_ws_fetch("gswarm", "api", "v1", "ws", "profiling")
    try:
        await api(
            "POST",
            f"{P}/profiling/start",
            body={"name": "live", "sampling_frequency_ms": 50, "nodes": ["node1"]},
        )
        ws.write_message(json.dumps({"sessions": ["live"], "nodes": ["node1"]}))
        events = []
        while len([e for e in events if e["event"] == "frame"]) < 3:
            events.append(json.loads(await asyncio.wait_for(ws.read_message(), 10)))
        frames = [e for e in events if e["event"] == "frame"]
        assert events[0]["event"] in ("frame", "filter")
        after_filter = events[[e["event"] for e in events].index("filter") + 1 :]
        assert all(
            e["data"]["node"] == "node1" and "live" in e["data"]["sessions"] for e in after_filter
        )
        assert all("timestamp" in e and FrameRecord.model_validate(e["data"]) for e in frames)
        ws.write_message(json.dumps({"sessions": "live"}))
        while True:
            event = json.loads(await asyncio.wait_for(ws.read_message(), 10))
            if event["event"] == "error":
                break
        assert event["data"]["code"] == "INVALID_REQUEST"
    finally:
        ws.close()
        await api("POST", f"{P}/profiling/stop", body={"name": "live"})


async def test_grpc_service_with_the_jupyter_token_and_an_external_agent(
    api, gswarm_app, jp_serverapp
):
    port = gswarm_app.context.profiler_grpc.port
    status, reply, _ = await api("GET", f"{P}/status")
    assert port and port != 8090 and reply["data"]["grpc_port"] == port
    token = jp_serverapp.identity_provider.token
    async with grpc.aio.insecure_channel(f"localhost:{port}") as channel:
        stub = pb_grpc.ProfilerServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetStatus(pb.GetStatusRequest())
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        agent = Agent(f"localhost:{port}", token, name="edge", chunk_s=0.2)
        running = asyncio.ensure_future(agent.run())
        try:
            await asyncio.wait_for(agent.connected.wait(), 20)
            await stub.StartProfiling(
                pb.StartProfilingRequest(name="mixed", sampling_frequency_ms=100),
                metadata=(("authorization", f"token {token}"),),
            )

            async def everyone_reported():
                reply = (await api("GET", f"{P}/profiling/sessions/mixed"))[1]["data"]
                return {f["node"] for f in reply["frames"]} == {"node1", "node2", "edge"}

            await _until(everyone_reported)
            status = await stub.GetStatus(
                pb.GetStatusRequest(), metadata=(("authorization", f"Bearer {token}"),)
            )
            assert status.is_profiling and status.connected_clients == 3
            clients = (await api("GET", f"{P}/clients"))[1]["data"]["clients"]
            assert sorted((c["client_id"], c["kind"]) for c in clients) == [
                ("edge", "agent"),
                ("node1", "dask"),
                ("node2", "dask"),
            ]
            stopped = await stub.StopProfiling(
                pb.StopProfilingRequest(name="mixed"),
                metadata=(("authorization", f"token {token}"),),
            )
            assert set(stopped.summary) == {"node1", "node2", "edge"}
        finally:
            agent.stop()
            await running


async def test_the_server_answers_while_a_stop_summarises_a_session(api, monkeypatch):
    """Stopping reads the session's whole file, on a thread: other requests are answered
    meanwhile, and a second stop is a 409 CONFLICT naming the stop under way."""
    from ..profiler.support import BlockingRead

    status, reply, _ = await api(
        "POST", f"{P}/profiling/start", body={"name": "long", "sampling_frequency_ms": 50}
    )
    assert status == 201, reply
    spy = BlockingRead(monkeypatch)
    stop = asyncio.ensure_future(api("POST", f"{P}/profiling/stop", body={"name": "long"}))
    await asyncio.to_thread(spy.entered.wait)  # summarising now
    status, reply, _ = await api("GET", f"{P}/profiling/sessions")
    assert status == 200 and [s["status"] for s in reply["data"]["sessions"]] == ["running"]
    status, reply, _ = await api("POST", f"{P}/profiling/stop", body={"name": "long"})
    assert status == 409 and "is stopping" in reply["error"]["message"], reply
    spy.release.set()
    status, reply, _ = await stop
    assert status == 200 and SessionSummary.model_validate(reply["data"]).status == "finished"
    assert spy.off_loop
