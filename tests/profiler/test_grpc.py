import asyncio

import grpc
import pytest

from gswarm_jupyter.profiler._proto import profiler_pb2 as pb
from gswarm_jupyter.profiler.convert import frame_from_proto, frame_to_proto
from gswarm_jupyter.profiler.frames import GPU_METRICS, HOST_METRICS

from .support import AUTH, grpc_profiler, stub_for


def _frames(node, instance, seqs, sessions=()):
    return [
        pb.Frame(
            node=node,
            instance=instance,
            seq=s,
            timestamp_unix_s=1000.0 + s,
            sessions=list(sessions),
            host=pb.HostMetrics(cpu_utilization_ratio=s / 100),
        )
        for s in seqs
    ]


async def _stream(items):
    for item in items:
        yield item


async def test_every_call_without_or_with_a_wrong_token_is_unauthenticated(tmp_path):
    async with grpc_profiler(tmp_path) as (profiler, server), stub_for(server) as stub:
        assert server.port and server.port > 0
        for metadata in (
            None,
            (("authorization", "token wrong"),),
            (("authorization", "secret-token"),),
        ):
            calls = [
                stub.GetStatus(pb.GetStatusRequest(), metadata=metadata),
                stub.Connect(pb.ConnectRequest(name="x", instance="i"), metadata=metadata),
                stub.StartProfiling(pb.StartProfilingRequest(name="s"), metadata=metadata),
                stub.StopProfiling(pb.StopProfilingRequest(name="s"), metadata=metadata),
                stub.ListSessions(pb.ListSessionsRequest(), metadata=metadata),
                stub.StreamMetrics(_stream(_frames("x", "i", [1])), metadata=metadata),
            ]
            for call in calls:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in stub.Subscribe(pb.SubscribeRequest(), metadata=metadata):
                    pass
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert profiler.sessions() == [] and profiler.clients() == []
        # Bearer works as well as token
        status = await stub.GetStatus(
            pb.GetStatusRequest(), metadata=(("authorization", "Bearer secret-token"),)
        )
        assert status.is_profiling is False and status.sampling_frequency_ms == 1000


async def test_sessions_over_grpc_with_streamed_frames_and_duplicates_dropped(tmp_path):
    async with grpc_profiler(tmp_path) as (profiler, server), stub_for(server) as stub:
        hello = await stub.Connect(
            pb.ConnectRequest(name="edge1", hostname="h", instance="i1"), metadata=AUTH
        )
        assert hello.node_id == "edge1" and hello.last_seq == 0 and dict(hello.plan.sessions) == {}

        session = await stub.StartProfiling(
            pb.StartProfilingRequest(
                name="g", sampling_frequency_ms=50, nodes=["edge1"], tags={"cell": "3"}
            ),
            metadata=AUTH,
        )
        assert session.status == "running" and session.sampling_frequency_ms == 50
        assert dict(session.tags) == {"cell": "3"}
        for bad, code in (
            (pb.StartProfilingRequest(name="g"), grpc.StatusCode.ALREADY_EXISTS),
            (
                pb.StartProfilingRequest(name="h", sampling_frequency_ms=5),
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
            (pb.StartProfilingRequest(name="h", nodes=["nowhere"]), grpc.StatusCode.NOT_FOUND),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.StartProfiling(bad, metadata=AUTH)
            assert err.value.code() == code

        ack = await stub.StreamMetrics(
            _stream(_frames("edge1", "i1", [1, 2, 3], ["g"])), metadata=AUTH
        )
        assert (ack.accepted, ack.duplicates, ack.last_seq) == (3, 0, 3)
        assert dict(ack.plan.sessions) == {"g": 50}
        ack = await stub.StreamMetrics(
            _stream(_frames("edge1", "i1", [2, 3, 4], ["g"])), metadata=AUTH
        )
        assert (ack.accepted, ack.duplicates, ack.last_seq) == (1, 2, 4)
        again = await stub.Connect(
            pb.ConnectRequest(name="edge1", hostname="h", instance="i1"), metadata=AUTH
        )
        assert (
            again.node_id == "edge1"
            and again.last_seq == 4
            and dict(again.plan.sessions) == {"g": 50}
        )

        listed = await stub.ListSessions(pb.ListSessionsRequest(), metadata=AUTH)
        assert [(s.name, s.frames_collected) for s in listed.sessions] == [("g", 4)]
        # agent frames taken after the stop must arrive before the stop answers: send one
        stopping = asyncio.ensure_future(
            stub.StopProfiling(pb.StopProfilingRequest(name="g"), metadata=AUTH)
        )
        await asyncio.sleep(0.1)
        later = pb.Frame(node="edge1", instance="i1", seq=5, timestamp_unix_s=4e9, sessions=["g"])
        await stub.StreamMetrics(_stream([later]), metadata=AUTH)
        stopped = await stopping
        assert stopped.session.status == "finished" and stopped.session.frames_collected == 4
        stats = stopped.summary["edge1"].devices["host"].metrics["cpu_utilization_ratio"]
        assert (stats.count, stats.max) == (4, pytest.approx(0.04))
        stored = list(profiler.frames("g"))  # each as sent, with the session's tags
        fourth = _frames("edge1", "i1", [4], ["g"])[0]
        assert stored[-1] == {**frame_from_proto(fourth), "tags": {"cell": "3"}}
        await profiler.start_session("g", 50, ["edge1"])
        stray = _frames("edge1", "i1", [6], ["g", "not-running"])
        ack = await stub.StreamMetrics(_stream(stray), metadata=AUTH)
        assert (ack.accepted, ack.duplicates) == (1, 0)
        (latest,) = profiler.latest(["edge1"])  # with the sessions that kept it
        assert latest == {**frame_from_proto(stray[0]), "sessions": ["g"]}
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.StopProfiling(pb.StopProfilingRequest(name="never"), metadata=AUTH)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_stream_before_connect_is_refused(tmp_path):
    async with grpc_profiler(tmp_path) as (profiler, server), stub_for(server) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.StreamMetrics(_stream(_frames("ghost", "i", [1])), metadata=AUTH)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_subscribe_filters_by_session_node_and_metric(tmp_path):
    async with grpc_profiler(tmp_path) as (profiler, server), stub_for(server) as stub:
        for name in ("a", "b"):
            await stub.Connect(pb.ConnectRequest(name=name, instance=name), metadata=AUTH)
        await profiler.start_session("only-a", 10, ["a"])
        call = stub.Subscribe(
            pb.SubscribeRequest(sessions=["only-a"], metrics=["cpu_utilization_ratio"]),
            metadata=AUTH,
        )
        await asyncio.sleep(0.2)  # the subscription is registered once the call is running
        await stub.StreamMetrics(_stream(_frames("b", "b", [1, 2], ["only-a"])), metadata=AUTH)
        frames = _frames("a", "a", [1, 2])
        frames[1].sessions.append("only-a")
        frames[1].host.memory_used_bytes = 5
        await stub.StreamMetrics(_stream(frames), metadata=AUTH)
        got = await asyncio.wait_for(call.read(), 5)
        call.cancel()
        assert (got.node, got.seq, list(got.sessions)) == ("a", 2, ["only-a"])
        assert got.host.HasField("cpu_utilization_ratio") and not got.host.HasField(
            "memory_used_bytes"
        )


def test_frame_round_trip_keeps_absent_readings_absent():
    frame = {
        "node": "n",
        "instance": "i",
        "seq": 3,
        "timestamp_unix_s": 1767225600.5,
        "sessions": ["s"],
        "host": {
            "cpu_utilization_ratio": 0.5,
            "memory_used_bytes": 7,
            "disk_read_bytes_per_s": None,
            "disk_write_bytes_per_s": 0.0,
        },
        "gpus": [
            {
                "device": "gpu0",
                "power_watts": 71.5,
                "nvlink_rx_bytes_per_s": None,
                "processes": [{"pid": 9, "used_memory_bytes": None}],
            }
        ],
    }
    back = frame_from_proto(frame_to_proto(frame))
    assert back["timestamp"] == "2026-01-01T00:00:00.500Z"
    assert back["host"]["cpu_utilization_ratio"] == 0.5 and back["host"]["memory_used_bytes"] == 7
    assert (
        back["host"]["disk_read_bytes_per_s"] is None
        and back["host"]["network_rx_bytes_per_s"] is None
    )
    assert back["gpus"][0]["power_watts"] == 71.5 and back["gpus"][0]["utilization_ratio"] is None
    assert back["gpus"][0]["processes"] == [{"pid": 9, "used_memory_bytes": None}]
    assert back["host"]["disk_write_bytes_per_s"] == 0.0  # a zero reading stays zero, not null
    assert list(back["host"]) == list(HOST_METRICS)
    assert list(back["gpus"][0]) == ["device", *GPU_METRICS, "processes"]
    assert back["sessions"] == ["s"] and type(back["sessions"]) is list


async def test_a_hundred_concurrent_agent_streams_lose_no_frame(tmp_path):
    agents, per_stream = 100, 5
    async with grpc_profiler(tmp_path) as (profiler, server), stub_for(server) as stub:
        await stub.StartProfiling(pb.StartProfilingRequest(name="many"), metadata=AUTH)
        hellos = await asyncio.gather(*(
            stub.Connect(pb.ConnectRequest(name=f"a{i}", instance=f"i{i}"), metadata=AUTH)
            for i in range(agents)
        ))
        answers = await asyncio.gather(*(
            stub.StreamMetrics(
                _stream(_frames(h.node_id, f"i{i}", range(1, per_stream + 1), ["many"])),
                metadata=AUTH,
            )
            for i, h in enumerate(hellos)
        ))
        assert [(a.accepted, a.duplicates, a.last_seq) for a in answers] == [
            (per_stream, 0, per_stream)
        ] * agents
        frames = list(profiler.frames("many"))
        assert len(frames) == agents * per_stream
        assert {(f["node"], f["seq"]) for f in frames} == {
            (f"a{i}", s) for i in range(agents) for s in range(1, per_stream + 1)
        }
