"""The same-host lane between the gateway and a replica's actor: a Unix socket, no TLS, no Dask.

A replica's worker that shares its host with the gateway (the embedded cluster's always does)
answers the gateway's inference messages over a Unix socket in the abstract namespace (Linux),
named at random when the actor starts and told to the gateway over Dask's own (TLS) comm. Each
end accepts only a peer of its own user (`SO_PEERCRED`), so the lane admits no one the cluster's
credentials would not: another user can neither call the actor nor stand in for it. A frame is
an 8-byte length and a pickle (`(call_id, method, args)` out, `(call_id, ok, value)` back); calls
are answered as they finish, several in flight on one connection.

Invariant: every call sent gets exactly one outcome: the method's answer, the exception it raised,
or `ConnectionResetError` when the lane closes first (its worker gone, the actor stopped or
forgotten by its worker); a call given up by its caller is forgotten, its answer dropped. The
lane serves only the methods it was opened with.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import socket
import struct
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

_LENGTH = struct.Struct("<Q")
_PEERCRED = struct.Struct("iII")  # pid, uid, gid
SERVED = frozenset({"infer_many"})  # the actor methods a lane carries
WATCH_INTERVAL = 1.0  # how often an open lane checks that its actor is still served
# A frame this long is unpickled on a thread, not the event loop (Dask's comm offloads at 10 MiB;
# a list of a million floats takes ~20 ms to unpickle, a thread hop ~0.1 ms).
OFFLOAD_BYTES = 1 << 20

log = logging.getLogger(__name__)


def host_id() -> str:
    """What tells two processes they share a host and its abstract sockets."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return f"{socket.gethostname()}/{boot}"


def supported() -> bool:
    return sys.platform == "linux"


def _peer_is_us(sock: Any) -> bool:
    """Whether the process at the other end of the Unix socket `sock` runs as this user."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    except (OSError, AttributeError):
        return False
    return _PEERCRED.unpack(raw)[1] == os.geteuid()


def _hang_up(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closing: its sockets go with it
        writer.close()


def _frame(value: Any) -> bytes:
    body = pickle.dumps(value, protocol=5)
    return _LENGTH.pack(len(body)) + body


async def _read(reader: asyncio.StreamReader) -> Any:
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    body = await reader.readexactly(length)
    if length >= OFFLOAD_BYTES:
        return await asyncio.to_thread(pickle.loads, body)
    return pickle.loads(body)


class LaneServer:
    """The actor's end: serves `methods` (name -> coroutine function) while `alive()` holds."""

    def __init__(self, methods: dict[str, Callable[..., Awaitable[Any]]],
                 alive: Callable[[], bool]) -> None:
        self._methods = methods
        self._alive = alive
        self.name = f"\0gswarm-lane-{uuid.uuid4().hex}"
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._answering: set[asyncio.Task[None]] = set()  # held: the loop keeps weak references
        self._watch: asyncio.TimerHandle | None = None

    async def open(self) -> dict[str, str]:
        """Listen; answer what the gateway needs to reach this lane."""
        self._server = await asyncio.start_unix_server(self._serve, self.name)
        self._watch = asyncio.get_running_loop().call_later(WATCH_INTERVAL, self._check)
        return {"name": self.name, "host": host_id()}

    def close(self) -> None:
        """Stop listening, drop every connection and cancel the calls still being answered
        (they fail at the gateway as calls on a closed lane)."""
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            _hang_up(writer)
        self._writers.clear()
        for task in list(self._answering):
            task.cancel()

    async def finish(self, timeout: float = 30.0) -> None:
        """Stop listening, let the calls being answered (and any still arriving on open
        connections) send their answers, then `close`."""
        if self._server is not None:
            self._server.close()
        deadline = asyncio.get_running_loop().time() + timeout
        while self._answering:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            await asyncio.wait(set(self._answering), timeout=left)
        self.close()

    def _check(self) -> None:
        if self._server is None:
            return
        if not self._alive():
            self.close()
            return
        self._watch = asyncio.get_running_loop().call_later(WATCH_INTERVAL, self._check)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not _peer_is_us(writer.get_extra_info("socket")) or self._server is None:
            writer.close()
            return
        self._writers.add(writer)
        try:
            while True:
                call_id, method, args = await _read(reader)
                if not self._alive():  # the worker closes or forgot the actor: as a lost one
                    self.close()
                    return
                task = asyncio.ensure_future(self._answer(writer, call_id, method, args))
                self._answering.add(task)
                task.add_done_callback(self._answering.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the gateway hung up
        finally:
            self._writers.discard(writer)
            _hang_up(writer)

    async def _answer(self, writer: asyncio.StreamWriter, call_id: int, method: str,
                      args: tuple[Any, ...]) -> None:
        try:
            served = self._methods.get(method)
            if served is None:
                raise AttributeError(f"the lane serves no method {method!r}")
            reply = (call_id, True, await served(*args))
        except Exception as exc:  # noqa: BLE001 (the method's error is its caller's outcome)
            reply = (call_id, False, exc)
        try:
            frame = _frame(reply)
        except Exception as exc:  # noqa: BLE001 (an answer that cannot cross: say why)
            frame = _frame((call_id, False, RuntimeError(f"{method}'s answer cannot cross: {exc}")))
        if not writer.is_closing():
            writer.write(frame)
            with contextlib.suppress(ConnectionError):
                await writer.drain()


class LaneUnreachable(OSError):
    """The lane could not be opened (another host, a closed lane): nothing was sent."""


class LaneClient:
    """The gateway's end of one replica's lane, connected on first use (and again after a
    connection closed)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._connection: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None

    async def call(self, method: str, *args: Any) -> Any:
        """`method(*args)` on the actor; its exception raised here; `LaneUnreachable` if the
        lane cannot be opened, `ConnectionResetError` if it closes before answering."""
        connection = self._connection
        if connection is None or connection.closed:
            connection = await self._connect()
        return await connection.call(method, args)

    async def _connect(self) -> _Connection:
        if self._connecting is None:  # one opening, shared by every caller waiting for it
            self._connecting = asyncio.ensure_future(self._open())
            self._connecting.add_done_callback(self._opened)
        return await asyncio.shield(self._connecting)

    def _opened(self, opening: asyncio.Future[_Connection]) -> None:
        if self._connecting is opening:
            self._connecting = None
        if not opening.cancelled() and opening.exception() is None:
            self._connection = opening.result()

    async def _open(self) -> _Connection:
        try:
            reader, writer = await asyncio.open_unix_connection(self.name)
        except OSError as exc:
            raise LaneUnreachable(f"the lane {self.name[1:]!r} cannot be opened: {exc}") from None
        if not _peer_is_us(writer.get_extra_info("socket")):
            _hang_up(writer)
            raise LaneUnreachable(f"the lane {self.name[1:]!r} is held by another user")
        return _Connection(self.name, reader, writer)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class _Connection:
    """One open connection of a lane and the calls waiting on it (only its own fail with it)."""

    def __init__(self, name: str, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.name = name
        self._writer = writer
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count()
        self.closed = False
        self._reading = asyncio.ensure_future(self._replies(reader))

    async def call(self, method: str, args: tuple[Any, ...]) -> Any:
        if self.closed or self._writer.is_closing():
            raise ConnectionResetError(f"the lane {self.name[1:]!r} closed")
        call_id = next(self._ids)
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = answer
        try:
            self._writer.write(_frame((call_id, method, args)))
            await self._writer.drain()
            return await answer
        finally:
            self._pending.pop(call_id, None)
            if not answer.done():
                answer.cancel()
            elif not answer.cancelled():
                answer.exception()  # seen: the caller has this outcome, or the send's own error

    async def _replies(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                call_id, ok, value = await _read(reader)
                answer = self._pending.pop(call_id, None)
                if answer is None or answer.done():
                    continue  # given up by its caller
                if ok:
                    answer.set_result(value)
                else:
                    answer.set_exception(value)
        except (asyncio.IncompleteReadError, OSError):
            pass  # the lane closed
        except Exception as exc:  # noqa: BLE001 (an answer that cannot be read ends the connection)
            log.warning("gswarm: the lane %r sent an answer that cannot be read: %s",
                        self.name[1:], exc)
        finally:
            self.close()

    def close(self) -> None:
        self.closed = True
        _hang_up(self._writer)
        pending, self._pending = self._pending, {}
        for answer in pending.values():
            if not answer.done():
                answer.set_exception(ConnectionResetError(f"the lane {self.name[1:]!r} closed"))
