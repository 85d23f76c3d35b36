import asyncio
import os
import subprocess
import sys
import time

from gswarm_jupyter.profiler.agent import Agent

from .fake_nvml import FakeNvml
from .support import TOKEN, grpc_profiler


async def _until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_agent_streams_host_and_gpu_frames_for_a_session(tmp_path):
    async with grpc_profiler(tmp_path) as (profiler, server):
        agent = Agent(
            f"127.0.0.1:{server.port}", TOKEN, name="edge", nvml=FakeNvml(), chunk_s=0.2
        )
        running = asyncio.ensure_future(agent.run())
        try:
            await asyncio.wait_for(agent.connected.wait(), 10)
            assert [c["client_id"] for c in profiler.clients()] == ["edge"]
            assert profiler.clients()[0]["gpus"][0]["name"] == "Fake A100"
            await profiler.start_session("edge-run", 50)
            await asyncio.sleep(0.8)
            detail = await profiler.stop_session("edge-run")
        finally:
            agent.stop()
            await running
        frames = list(profiler.frames("edge-run"))
        assert detail["frames_collected"] == len(frames) >= 5
        assert {f["node"] for f in frames} == {"edge"}
        assert all(f["timestamp_unix_s"] <= detail["end_time_unix_s"] for f in frames)
        assert frames[0]["gpus"][0]["power_watts"] == 250.0
        assert set(detail["summary"]["edge"]) == {"host", "gpu0"}
        status = profiler.status()
        assert status["connected_clients"] == 1 and not status["is_profiling"]


async def test_agent_buffers_while_the_server_is_away_and_resends_without_duplicates(tmp_path):
    async with grpc_profiler(tmp_path) as (profiler, server):
        port = server.port
        agent = Agent(f"127.0.0.1:{port}", TOKEN, name="edge", chunk_s=0.2, retry_s=0.2)
        running = asyncio.ensure_future(agent.run())
        try:
            await asyncio.wait_for(agent.connected.wait(), 10)
            await profiler.start_session("outage", 20)
            await asyncio.sleep(0.4)
            await server.stop(grace=0)
            outage_started = time.time()
            await _until(lambda: agent.reconnects > 0)
            await asyncio.sleep(0.6)  # sampling goes on into the agent's buffer
            outage_ended = time.time()
            assert len(agent.buffer) > 0
            await server.start(port=port)
            await _until(lambda: agent.reconnects > 0 and agent.connected.is_set())
            await asyncio.sleep(0.5)
            detail = await profiler.stop_session("outage")
        finally:
            agent.stop()
            await running
        frames = list(profiler.frames("outage"))
        seqs = [f["seq"] for f in frames]
        assert len(seqs) == len(set(seqs)) == detail["frames_collected"]
        # only this session runs, so every sample from its first to its last is one of its
        # frames: an unbroken run of sequence numbers means nothing was lost in the outage
        assert seqs == list(range(seqs[0], seqs[-1] + 1))
        taken_during_outage = [
            f for f in frames if outage_started < f["timestamp_unix_s"] < outage_ended
        ]
        assert len(taken_during_outage) >= 10  # arrived late, with their own timestamps
        gaps = [b["timestamp_unix_s"] - a["timestamp_unix_s"] for a, b in zip(frames, frames[1:])]
        assert max(gaps) < 0.5
        client = profiler.clients()[0]
        assert client["duplicates"] >= 0 and client["frames_received"] >= len(frames)


async def test_agent_command_line_refuses_a_wrong_token_and_streams_with_the_right_one(tmp_path):
    async with grpc_profiler(tmp_path) as (profiler, server):
        env = {**os.environ, "GSWARM_TOKEN": TOKEN}
        command = [
            sys.executable,
            "-m",
            "gswarm_jupyter.profiler.agent",
            "--server",
            f"127.0.0.1:{server.port}",
            "--name",
            "cli-node",
        ]
        wrong = await asyncio.create_subprocess_exec(
            *command, "--token", "wrong", env=env, stderr=subprocess.PIPE
        )
        _, err = await asyncio.wait_for(wrong.communicate(), 60)
        assert wrong.returncode == 2 and b"refused the token" in err
        right = await asyncio.create_subprocess_exec(*command, env=env)
        try:
            await _until(lambda: profiler.hub.latest.get("cli-node") is not None, timeout=60)
        finally:
            right.terminate()
            assert await asyncio.wait_for(right.wait(), 30) == 0
        frame = profiler.latest(["cli-node"])[0]
        assert frame["host"]["memory_total_bytes"] > 0 and frame["gpus"] == []
