"""What the fault tests share: a blocking client of a live server's REST API, the OS processes
behind a server (its worker processes, found by the port their node listens on), SIGKILL, and
polling with generous limits (limits only avoid hangs; nothing here times the server)."""

from __future__ import annotations

import base64
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlparse

import httpx
import psutil

from gswarm_jupyter.testing import LiveServer

API = "gswarm/api/v1"
COMPUTE = "gswarm/compute/v1"
FINISHED = {"completed", "failed", "cancelled"}
MEMORY_DEVICES = ("dram", "gpu", "vgpu")  # copies there die with their worker process

T = TypeVar("T")


class Api:
    """`api.call("GET", "gswarm/api/v1/health")` answers (status, envelope) whatever the status."""

    def __init__(self, server: LiveServer, timeout: float = 120.0) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, headers=server.headers, timeout=timeout)

    def call(self, method: str, path: str, body: Any = None,
             params: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        r = self.http.request(method, path, json=body, params=params)
        try:
            envelope = r.json()
        except ValueError:
            envelope = {"text": r.text}
        return r.status_code, envelope

    def ok(self, method: str, path: str, body: Any = None, expect: int = 200) -> dict[str, Any]:
        """The `data` of an answer that must have status `expect`."""
        status, env = self.call(method, path, body)
        assert status == expect, (method, path, status, env)
        return env["data"]

    def task(self, task_id: str) -> dict[str, Any]:
        return self.ok("GET", f"{API}/queue/tasks/{task_id}")

    def finished(self, task_id: str, limit: float = 120.0) -> dict[str, Any]:
        return wait_until(lambda: _if(self.task(task_id), lambda t: t["status"] in FINISHED),
                          f"task {task_id} to finish", limit)

    def node(self, name: str) -> dict[str, Any]:
        return self.ok("GET", f"{API}/nodes/{name}")

    def models(self) -> list[dict[str, Any]]:
        return self._all("models")

    def chunks(self) -> list[dict[str, Any]]:
        return self._all("data", "chunks")

    def _all(self, route: str, key: str | None = None) -> list[dict[str, Any]]:
        status, env = self.call("GET", f"{API}/{route}", params={"per_page": 500})
        assert status == 200, env
        return env["data"][key or route]

    def put_bytes(self, data: bytes, device: str) -> dict[str, Any]:
        body = {"data": base64.b64encode(data).decode(), "format": "bytes", "device": device}
        return self.ok("POST", f"{API}/data", body, expect=201)

    def content(self, chunk_id: str) -> bytes:
        r = self.http.get(f"{API}/data/{chunk_id}/content")
        assert r.status_code == 200, r.text
        return r.content

    def close(self) -> None:
        self.http.close()


def _if(value: T, test: Callable[[T], bool]) -> T | None:
    return value if test(value) else None


def wait_until(check: Callable[[], T | None], what: str, limit: float = 120.0,
               every: float = 0.1) -> T:
    """Poll `check()` until it answers something truthy; fail after `limit` s (a hang guard)."""
    end = time.monotonic() + limit
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(every)


def locations(record: dict[str, Any]) -> dict[str, str]:
    """{qualified device: status} of a chunk or model record."""
    return {loc["device"]: loc["status"] for loc in record["locations"]}


def live_memory_copies(api: Api, node: str) -> list[str]:
    """Every model or chunk location the registry calls ready/available on `node`'s memory."""
    found = []
    for kind, records, key, live in (("model", api.models(), "model_name", "ready"),
                                     ("chunk", api.chunks(), "chunk_id", "available")):
        for record in records:
            for device, status in locations(record).items():
                where, _, dev = device.rpartition(":")
                if where == node and dev.startswith(MEMORY_DEVICES) and status == live:
                    found.append(f"{kind} {record[key]} on {device}: {status}")
    return found


# -- processes --------------------------------------------------------------------------------

def worker_process(server: LiveServer, address: str) -> psutil.Process:
    """The server's child process whose worker listens at `address` (tls://host:port)."""
    assert server.proc is not None
    port = urlparse(address).port
    for child in psutil.Process(server.proc.pid).children(recursive=True):
        try:
            ports = {c.laddr.port for c in child.net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN}
        except psutil.NoSuchProcess:
            continue
        if port in ports:
            return child
    raise AssertionError(f"no process of the server listens at {address}")


@dataclass(frozen=True)
class Killed:
    node: str
    address: str
    pid: int


def kill_worker(api: Api, node: str) -> Killed:
    """SIGKILL `node`'s worker process."""
    info = api.node(node)
    assert info["status"] == "online", info
    process = worker_process(api.server, info["address"])
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    return Killed(node, info["address"], process.pid)


def wait_back(api: Api, killed: Killed, limit: float = 180.0) -> dict[str, Any]:
    """The killed node online again, served by a new worker process (its nanny started one,
    under the same name; the new worker may well listen on the port the old one had)."""

    def back() -> dict[str, Any] | None:
        info = api.node(killed.node)
        if info["status"] != "online":
            return None
        try:
            process = worker_process(api.server, info["address"])
        except AssertionError:  # the directory has not seen the death yet
            return None
        return info if process.pid != killed.pid else None

    return wait_until(back, f"{killed.node} to come back", limit, every=0.3)


def kill_server(server: LiveServer) -> None:
    """SIGKILL the server's process group and every process it had started (its worker
    processes run in sessions of their own); answers once all of them are gone."""
    assert server.proc is not None
    processes = [psutil.Process(server.proc.pid),
                 *psutil.Process(server.proc.pid).children(recursive=True)]
    os.killpg(server.proc.pid, signal.SIGKILL)
    for process in processes:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=30)
    assert not alive, alive
    server.proc.wait(timeout=30)
    server.proc = None
