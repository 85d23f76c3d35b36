"""The same-host lane (`serving.lane`): calls answered as they finish, each with its own outcome;
a closed lane fails its calls in flight; an unreachable one sends nothing; a peer of another user
is turned away; a lane whose actor is no longer served closes."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import textwrap
import threading

import pytest

from gswarm_jupyter.cluster.serving import lane
from gswarm_jupyter.cluster.serving.lane import LaneClient, LaneServer, LaneUnreachable


async def _slow(value: str, seconds: float) -> str:
    await asyncio.sleep(seconds)
    return value


async def _echo(value):
    return value


async def _fail(message: str) -> None:
    raise ValueError(message)


async def open_lane(alive=lambda: True, **methods):
    """A lane serving `methods` (`slow` by default) and a client connected to it."""
    server = LaneServer(methods or {"slow": _slow}, alive)
    return server, LaneClient((await server.open())["name"])


async def test_calls_in_flight_are_answered_as_they_finish_each_with_its_own_outcome():
    server, client = await open_lane(slow=_slow, fail=_fail)
    try:
        finished: list[str] = []

        async def ask(value: str, seconds: float) -> str:
            answer = await client.call("slow", value, seconds)
            finished.append(answer)
            return answer

        answers = await asyncio.gather(ask("late", 0.3), ask("early", 0.0),
                                       client.call("fail", "bad rows"), client.call("nope"),
                                       return_exceptions=True)

        assert answers[:2] == ["late", "early"] and finished == ["early", "late"]
        assert isinstance(answers[2], ValueError) and str(answers[2]) == "bad rows"
        assert isinstance(answers[3], AttributeError)  # the lane serves only what it opened with
        assert await client.call("slow", "again", 0) == "again"  # the connection stays usable
    finally:
        client.close()
        server.close()


async def test_a_long_frame_is_unpickled_off_the_event_loop_at_both_ends(monkeypatch):
    threads: list[str] = []
    real_loads = lane.pickle.loads

    def loads(body: bytes):
        threads.append(threading.current_thread().name)
        return real_loads(body)

    monkeypatch.setattr(lane.pickle, "loads", loads)
    server, client = await open_lane(echo=_echo)
    try:
        assert await client.call("echo", "short") == "short"
        assert threads == [threading.main_thread().name] * 2  # call and answer, on the loop
        threads.clear()
        rows = [[float(i)] * 64 for i in range(lane.OFFLOAD_BYTES // 64 // 9 + 1)]
        assert await client.call("echo", rows) == rows
        assert len(threads) == 2 and threading.main_thread().name not in threads
    finally:
        client.close()
        server.close()


async def test_a_lane_closed_with_calls_in_flight_fails_them_and_an_unreachable_one_sends_nothing():
    server, client = await open_lane()
    pending = asyncio.ensure_future(client.call("slow", "never", 30))
    await asyncio.sleep(0.1)
    server.close()

    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(pending, 10)
    with pytest.raises(LaneUnreachable):  # nothing listens under that name any more
        await client.call("slow", "x", 0)


async def test_a_lane_whose_actor_is_no_longer_served_closes():
    served = True
    _server, client = await open_lane(lambda: served)
    assert await client.call("slow", "yes", 0) == "yes"

    served = False  # the worker closed, or forgot the actor
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(client.call("slow", "no", 0), 10)
    with pytest.raises(LaneUnreachable):
        await client.call("slow", "no", 0)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("python3"),
                    reason="needs root to run a peer as another user")
async def test_a_peer_of_another_user_is_turned_away():
    calls: list[str] = []

    async def record(value: str) -> str:
        calls.append(value)
        return value

    server = LaneServer({"record": record}, lambda: True)
    info = await server.open()
    try:
        peer = textwrap.dedent(f"""
            import pickle, socket, struct
            s = socket.socket(socket.AF_UNIX)
            s.connect({info['name']!r})
            body = pickle.dumps((0, "record", ("intruder",)))
            try:
                s.sendall(struct.pack("<Q", len(body)) + body)
                print(repr(s.recv(64)))
            except ConnectionError:
                print("reset")
        """)
        python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
        out = await asyncio.to_thread(subprocess.run, [python, "-c", peer], user=65534,
                                      capture_output=True, text=True, timeout=60, cwd="/")
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() in ("b''", "reset")  # hung up on, unanswered
        assert calls == []
    finally:
        server.close()


async def test_a_finishing_lane_sends_the_answers_of_its_calls_in_flight_then_closes():
    server, client = await open_lane()
    pending = asyncio.ensure_future(client.call("slow", "kept", 0.2))
    await asyncio.sleep(0.05)

    await server.finish()

    assert await asyncio.wait_for(pending, 10) == "kept"
    with pytest.raises(OSError):  # closed under it, or found closed before sending
        await client.call("slow", "x", 0)


async def test_a_finishing_lane_answers_calls_that_arrive_on_its_open_connections():
    server, client = await open_lane()
    first = asyncio.ensure_future(client.call("slow", "first", 0.2))
    await asyncio.sleep(0.05)

    finishing = asyncio.ensure_future(server.finish())
    await asyncio.sleep(0)
    late = asyncio.ensure_future(client.call("slow", "late", 0.1))  # after finish began
    await finishing

    assert await asyncio.wait_for(first, 10) == "first"
    assert await asyncio.wait_for(late, 10) == "late"
