"""`client.profiler` against a real server: sessions, reports, exports and the live stream."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from gswarm_jupyter.client import AsyncGswarmClient, GswarmClient
from gswarm_jupyter.core.errors import Conflict, InvalidRequest, NotFound


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _wait_for_frames(client: GswarmClient, name: str, at_least: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        active = {s["name"]: s for s in client.profiler.status()["active_sessions"]}
        if active[name]["frames_collected"] >= at_least:
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} collected fewer than {at_least} frames in {timeout} s")


def test_a_session_from_start_to_report_and_exports(live_env):
    name = _name("sdk")
    with GswarmClient() as client:
        record = client.profiler.start(name, sampling_frequency_ms=50, nodes=["node1"],
                                       tags={"execution_count": 7})
        assert (record["name"], record["status"]) == (name, "running")
        assert record["sampling_frequency_ms"] == 50 and record["tags"] == {"execution_count": 7}
        assert name in [s["name"] for s in client.profiler.status()["active_sessions"]]
        _wait_for_frames(client, name, 3)

        report = client.profiler.stop(name)
        assert report["status"] == "finished" and report["frames_collected"] >= 3
        assert set(report["summary"]) == {"node1"}
        cpu = report["summary"]["node1"]["host"]["cpu_utilization_ratio"]
        assert cpu["count"] == report["frames_collected"]
        assert 0.0 <= cpu["mean"] <= cpu["p95"] <= cpu["max"] <= 1.0

        frames = client.profiler.frames(name)
        assert len(frames) == report["frames_collected"]
        assert {f["node"] for f in frames} == {"node1"}
        assert all(f["tags"] == {"execution_count": 7} and name in f["sessions"] for f in frames)
        detail = client.profiler.session(name)
        assert detail["summary"] == report["summary"] and len(detail["frames"]) == len(frames)

        csv = client.profiler.csv(name)
        assert isinstance(csv, bytes)
        lines = csv.decode().splitlines()
        assert lines[0].startswith("timestamp,timestamp_unix_s,node,seq,device,")
        assert len(lines) == 1 + len(frames)  # one host row per frame; no GPU here

        png = client.profiler.plot_png(name)
        one = client.profiler.plot_png(name, metrics=["memory_used_bytes"])
        assert png.startswith(b"\x89PNG") and one.startswith(b"\x89PNG") and png != one

        listed = {s["name"]: s for s in client.profiler.sessions()}
        assert listed[name]["status"] == "finished"


def test_clients_and_latest_frames(live_env):
    with GswarmClient() as client:
        clients = {c["client_id"]: c for c in client.profiler.clients()}
        assert {"node1", "node2"} <= set(clients)
        assert clients["node1"]["status"] == "connected"
        latest = client.profiler.latest()
        assert {"node1", "node2"} <= {f["node"] for f in latest}
        only = client.profiler.latest(nodes=["node2"], metrics=["cpu_utilization_ratio"])
        assert [f["node"] for f in only] == ["node2"]
        assert set(only[0]["host"]) == {"cpu_utilization_ratio"}


def test_bad_use_comes_back_as_the_servers_errors(live_env):
    name = _name("dup")
    with GswarmClient() as client:
        client.profiler.start(name)
        try:
            with pytest.raises(Conflict):
                client.profiler.start(name)
        finally:
            client.profiler.stop(name)
        with pytest.raises(NotFound):
            client.profiler.stop(_name("never"))
        with pytest.raises(NotFound):
            client.profiler.plot_png(_name("never"))
        with pytest.raises(InvalidRequest) as info:
            client.profiler.start(_name("fast"), sampling_frequency_ms=5)
        assert info.value.details["field"] == "sampling_frequency_ms"


async def test_the_async_client_streams_the_frames_of_one_session(live_env):
    name = _name("stream")
    async with AsyncGswarmClient() as client:
        record = await client.profiler.start(name, sampling_frequency_ms=50, nodes=["node2"])
        assert record["status"] == "running"
        seen = []
        try:
            events = client.profiler.events(sessions=[name])
            async with asyncio.timeout(30):  # a stream that stays silent fails, not hangs
                async for event in events:
                    if event["event"] == "frame":
                        seen.append(event["data"])
                        if len(seen) == 3:
                            break
            await events.aclose()
        finally:
            report = await client.profiler.stop(name)
        assert all(f["node"] == "node2" and name in f["sessions"] for f in seen)
        assert [f["seq"] for f in seen] == sorted(f["seq"] for f in seen)
        assert report["frames_collected"] >= 3
        assert name in [s["name"] for s in await client.profiler.sessions()]
