"""Hostile requests answer the contract's refusal, never a 500, a hang or a leak.

`CASES` is one table: a row per hostile request, with the status and error code it must get, the
details it must carry and the strings its answer must not contain. Add a row for each new case.
The server runs with small limits (`LIMITS`) so that going over them costs little.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from .model_helpers import MLP

API = "gswarm/api/v1"
COMPUTE = "gswarm/compute/v1"
KIB = 1024
LIMITS = {"max_body_bytes": 512 * KIB, "max_chunk_bytes": 96 * KIB}
# Endings and spellings a name must not slip through with (`$` matches before a final "\n").
BAD_ENDINGS = {"lf": "\n", "cr": "\r", "nul": "\x00", "dotdot": "/../x"}
CONFUSABLES = {"cyrillic-o": "m\u043edel", "fullwidth": "\uff4dodel", "arabic-digit": "m\u0661"}


@dataclass(frozen=True)
class Env:
    """What a row may refer to: the server's model root and a folder outside it."""

    root: Path
    outside: Path


Body = Any  # a JSON value, raw `bytes`, or a function of `Env` giving either


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    body: Body
    status: int
    code: str
    details: dict[str, Any] = field(default_factory=dict)  # must be in error.details
    absent: Callable[[Env], list[str]] = lambda env: []  # must not be in the answer
    setup: tuple[tuple[str, str, Any], ...] = ()  # requests made first, each must succeed


def tensor(shape: list[int], data: bytes = b"\x00", **extra: Any) -> dict[str, Any]:
    return {"data": b64(data), "format": "tensor", "device": "dram",
            "metadata": {"shape": shape, "dtype": "uint8"}, **extra}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def file_url(where: Callable[[Env], Path]) -> Callable[[Env], dict[str, Any]]:
    return lambda env: {"url": f"file://{where(env)}", "device": "dram"}


def outside_paths(env: Env) -> list[str]:
    return [str(env.outside), str(env.outside.resolve())]


REGISTER_M = (("POST", f"{API}/models", {"model_name": "m", "source_url": MLP.format(seed=0)}),)

CASES = [
    # -- finding 4: sizes and shapes that would stall or swell the server --------------------
    Case("shape-33-dims", "POST", f"{API}/data", tensor([1] * 33), 400, "INVALID_REQUEST",
         {"field": "metadata.shape"}),
    Case("shape-150000-dims", "POST", f"{API}/data", tensor([1] * 150_000), 400,
         "INVALID_REQUEST", {"field": "metadata.shape"}),
    Case("shape-33-dims-bytes-format", "POST", f"{API}/data",
         {"data": b64(b"x"), "device": "dram", "metadata": {"shape": [1] * 33}}, 400,
         "INVALID_REQUEST", {"field": "metadata.shape"}),
    Case("shape-not-the-payload", "POST", f"{API}/data", tensor([2, 2], b"abc"), 400,
         "INVALID_REQUEST", {"field": "data", "expected": 4, "got": 3}),
    Case("shape-over-max-chunk-for-a-download", "POST", f"{API}/data",
         {"url": "http://127.0.0.1:9/never-fetched", "format": "tensor", "device": "dram",
          "metadata": {"shape": [1024, 1024, 1024], "dtype": "float64"}},
         400, "INVALID_REQUEST", {"field": "metadata.shape", "limit": 96 * KIB}),
    Case("shape-negative-dimension", "POST", f"{API}/data", tensor([-1]), 400,
         "INVALID_REQUEST"),
    Case("body-over-max-body-bytes", "POST", f"{API}/data",
         json.dumps({"data": "A" * (600 * KIB), "device": "dram"}).encode(), 413,
         "PAYLOAD_TOO_LARGE", {"limit": 512 * KIB}),
    Case("base64-chunk-over-max-chunk-bytes", "POST", f"{API}/data",
         {"data": b64(b"x" * 100 * KIB), "device": "dram"}, 413, "PAYLOAD_TOO_LARGE",
         {"limit": 96 * KIB, "size": 100 * KIB, "field": "data"}),
    Case("file-chunk-over-max-chunk-bytes", "POST", f"{API}/data",
         file_url(lambda env: env.root / "big.bin"), 413, "PAYLOAD_TOO_LARGE",
         {"limit": 96 * KIB, "size": 100 * KIB, "field": "url"}),
    Case("nested-body-small", "POST", f"{API}/data",
         f'{{"device": "dram", "metadata": {nested(5_000)}}}'.encode(), 400, "INVALID_REQUEST",
         {"field": "body"}),
    Case("nested-body-parsed-in-a-thread", "POST", f"{API}/data",
         f'{{"device": "dram", "metadata": {nested(100_000)}}}'.encode(), 400,
         "INVALID_REQUEST", {"field": "body"}),
    Case("nested-model-metadata", "POST", f"{API}/models",
         f'{{"model_name": "n", "source_url": "{MLP.format(seed=0)}", '
         f'"metadata": {{"a": {nested(3_000)}}}}}'.encode(), 400, "INVALID_REQUEST"),
    Case("nested-training-rows", "POST", f"{COMPUTE}/training",
         f'{{"model_id": "m", "training_data": {nested(3_000)}}}'.encode(), 400,
         "INVALID_REQUEST"),
    Case("nested-json-chunk", "POST", f"{API}/data",
         {"data": b64(nested(5_000).encode()), "format": "json", "device": "dram"}, 400,
         "INVALID_REQUEST", {"field": "data"}),
    Case("malformed-large-body", "POST", f"{API}/data", b'{"data": "' + b"A" * 100 * KIB,
         400, "INVALID_REQUEST", {"field": "body"}),
    # -- finding 6: names must match whole --------------------------------------------------
    *(Case(f"model-name-{k}", "POST", f"{API}/models",
           {"model_name": f"m{end}", "source_url": MLP.format(seed=0)}, 400, "INVALID_REQUEST",
           {"field": "model_name"}) for k, end in BAD_ENDINGS.items()),
    *(Case(f"model-name-{k}", "POST", f"{API}/models",
           {"model_name": name, "source_url": MLP.format(seed=0)}, 400, "INVALID_REQUEST",
           {"field": "model_name"}) for k, name in CONFUSABLES.items()),
    Case("compute-model-id-lf", "POST", f"{COMPUTE}/models",
         {"model_id": "m\n", "model_path": MLP.format(seed=0)}, 400, "INVALID_REQUEST"),
    *(Case(f"chunk-device-{k}", "POST", f"{API}/data",
           {"data": b64(b"x"), "device": f"dram{end}"}, 400, "INVALID_REQUEST",
           {"field": "device"}) for k, end in BAD_ENDINGS.items()),
    Case("chunk-device-arabic-digit", "POST", f"{API}/data",
         {"data": b64(b"x"), "device": "vgpu\u0661"}, 400, "INVALID_REQUEST",
         {"field": "device"}),
    Case("chunk-id-lf", "GET", f"{API}/data/chunk-000000000000\n", None, 404, "NOT_FOUND"),
    Case("chunk-id-dotdot", "GET", f"{API}/data/..%2F..%2Fgswarm.sqlite3", None, 404,
         "NOT_FOUND"),
    *(Case(f"session-name-{k}", "POST", f"{API}/profiler/profiling/start",
           {"name": f"s{end}", "sampling_frequency_ms": 50}, 400, "INVALID_REQUEST",
           {"field": "name"}) for k, end in BAD_ENDINGS.items()),
    Case("service-device-lf", "POST", f"{API}/services",
         {"model_name": "m", "device": "dram\n"}, 400, "INVALID_REQUEST", {"field": "device"},
         setup=REGISTER_M),
    Case("service-id-lf", "GET", f"{API}/services/m-node1-dram-1\n", None, 404, "NOT_FOUND"),
    Case("node-lf", "GET", f"{API}/nodes/node1\n", None, 404, "NOT_FOUND"),
    # -- finding 8: a refused path is echoed as sent, never as it resolves ------------------
    Case("file-chunk-outside-the-roots", "POST", f"{API}/data",
         file_url(lambda env: env.root / ".." / "outside" / "secret.bin"), 403, "FORBIDDEN",
         absent=outside_paths),
    Case("file-chunk-symlink-out-of-the-roots", "POST", f"{API}/data",
         file_url(lambda env: env.root / "link.bin"), 403, "FORBIDDEN", absent=outside_paths),
    Case("file-model-symlink-out-of-the-roots", "POST", f"{API}/models",
         lambda env: {"model_name": "x", "source_url": f"file://{env.root}/link.bin"}, 403,
         "FORBIDDEN", absent=outside_paths),
]


@pytest.fixture
def gswarm_config(gswarm_config, tmp_path):
    gswarm_config.update(LIMITS, local_nodes=1, model_roots=[str(tmp_path / "models")])
    return gswarm_config


@pytest.fixture
def env(tmp_path) -> Env:
    root, outside = tmp_path / "models", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "big.bin").write_bytes(b"x" * 100 * KIB)
    (outside / "secret.bin").write_bytes(b"secret")
    (root / "link.bin").symlink_to(outside / "secret.bin")
    return Env(root, outside)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_hostile_request(api, env, case):
    for method, path, body in case.setup:
        status, reply, _ = await api(method, path, body=body)
        assert status < 300, (path, reply)
    body = case.body(env) if callable(case.body) else case.body
    if isinstance(body, bytes):
        status, reply, _ = await api(case.method, case.path, raw_body=body)
    else:
        status, reply, _ = await api(case.method, case.path, body=body)
    assert (status, reply.get("error", {}).get("code")) == (case.status, case.code), reply
    assert reply["success"] is False and reply["data"] is None
    details = reply["error"]["details"]
    assert {k: details.get(k) for k in case.details} == case.details, details
    text = json.dumps(reply)
    for secret in case.absent(env):
        assert secret not in text, f"the answer names {secret!r}: {text}"


async def test_a_body_within_the_limits_is_stored(api):
    """The limits refuse only what is over them: a chunk of exactly `max_chunk_bytes`, sent in
    a body parsed in a thread, is stored."""
    data = bytes(range(256)) * (96 * KIB // 256)
    status, reply, _ = await api("POST", f"{API}/data", body=tensor([len(data)], data))
    assert status == 201, reply
    assert reply["data"]["size"] == 96 * KIB


async def test_a_chunked_body_over_the_limit_is_dropped_and_refused(jp_fetch, gswarm_app):
    """Without a Content-Length the body is read, but no more than the limit is kept."""
    from tornado.httpclient import HTTPClientError

    async def produce(write):
        await write(b'{"device": "dram", "data": "')
        for _ in range(600):
            await write(b"A" * KIB)
        await write(b'"}')

    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(*f"{API}/data".split("/"), method="POST", body_producer=produce,
                       headers={"Content-Type": "application/json"})
    reply = json.loads(info.value.response.body)
    assert info.value.code == 413 and reply["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert reply["error"]["details"] == {"limit": 512 * KIB, "size": 600 * KIB + 30}


async def test_a_large_chunked_body_is_parsed_off_the_event_loop(jp_fetch, gswarm_app,
                                                                monkeypatch):
    """Without a Content-Length the end of the body is known only when it has all arrived: a
    large one is still parsed in a thread, never on the loop that serves every other request."""
    import threading

    from gswarm_jupyter.server.body import RequestBody

    parsed_on: list[str] = []
    parse = RequestBody._parse

    def spy(self):
        parsed_on.append(threading.current_thread().name)
        parse(self)

    monkeypatch.setattr(RequestBody, "_parse", spy)
    data = bytes(range(256)) * (96 * KIB // 256)

    async def produce(write):
        body = json.dumps(tensor([len(data)], data)).encode()
        for start in range(0, len(body), 16 * KIB):
            await write(body[start:start + 16 * KIB])

    reply = await jp_fetch(*f"{API}/data".split("/"), method="POST", body_producer=produce,
                           headers={"Content-Type": "application/json"})
    assert reply.code == 201 and json.loads(reply.body)["data"]["size"] == 96 * KIB
    assert parsed_on and threading.main_thread().name not in parsed_on


async def test_a_file_chunk_is_read_off_the_event_loop(api, env, monkeypatch):
    """A file:// chunk (up to `max_chunk_bytes`, a GiB by default) is read in a thread, never
    on the loop that serves every other request."""
    import threading

    from gswarm_jupyter.cluster.storage.uploads import ChunkUploads

    read_on: list[int] = []
    read = ChunkUploads._read_file

    def spy(self, url, req):
        read_on.append(threading.get_ident())
        return read(self, url, req)

    monkeypatch.setattr(ChunkUploads, "_read_file", spy)
    (env.root / "fits.bin").write_bytes(b"y" * 64 * KIB)
    status, reply, _ = await api("POST", f"{API}/data",
                                 body={"url": f"file://{env.root}/fits.bin", "device": "dram"})
    assert status == 201 and reply["data"]["size"] == 64 * KIB, reply
    assert read_on and threading.get_ident() not in read_on


# -- finding 8: cross-site writes ---------------------------------------------------------


async def _cookie_login(jp_fetch, token: str) -> tuple[str, str]:
    """Log in through the server's own login form: (Cookie header, the _xsrf token)."""
    page = await jp_fetch("login", method="GET", headers={"Authorization": ""})
    jar = SimpleCookie()
    for value in page.headers.get_list("Set-Cookie"):
        jar.load(value)
    xsrf = jar["_xsrf"].value
    done = await jp_fetch(
        "login", method="POST", body=urlencode({"_xsrf": xsrf, "password": token}),
        headers={"Authorization": "", "Cookie": f"_xsrf={xsrf}"},
        follow_redirects=False, raise_error=False,
    )
    assert done.code == 302, done.body
    for value in done.headers.get_list("Set-Cookie"):
        jar.load(value)
    assert any(name.startswith("username-") for name in jar), list(jar)
    return "; ".join(f"{k}={m.value}" for k, m in jar.items()), xsrf


@pytest.mark.parametrize(
    "extra, status",
    [
        ({}, 403),  # no _xsrf token
        ({"X-XSRFToken": "2|00000000|11111111|1"}, 403),  # a forged one
        ({"X-XSRFToken": "{xsrf}", "Origin": "http://evil.example"}, 403),  # a foreign origin
        ({"X-XSRFToken": "{xsrf}"}, 201),  # the real one: the login works
    ],
    ids=["no-xsrf", "forged-xsrf", "foreign-origin", "same-site"],
)
async def test_a_cookie_write_needs_the_xsrf_token(api, jp_fetch, jp_serverapp, extra, status):
    cookie, xsrf = await _cookie_login(jp_fetch, jp_serverapp.identity_provider.token)
    headers = {"Authorization": "", "Cookie": cookie,
               **{k: v.format(xsrf=xsrf) for k, v in extra.items()}}
    code, reply, _ = await api("POST", f"{API}/data", body={"data": b64(b"x"), "device": "dram"},
                               headers=headers)
    assert code == status, reply
    if status == 403:
        assert reply["error"]["code"] == "FORBIDDEN" and reply["success"] is False


# -- finding 8: what a refusal logs ------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, body, status, level",
    [
        ("GET", f"{API}/data/chunk-000000000000", None, 404, logging.INFO),
        ("POST", f"{COMPUTE}/resources", {}, 400, logging.INFO),
        ("POST", f"{API}/data", {"data": b64(b"x" * 2000), "device": "dram"}, 507,
         logging.WARNING),
    ],
    ids=["404", "400", "507"],
)
async def test_an_expected_refusal_logs_one_line_without_a_traceback(
    api, gswarm_app, caplog, method, path, body, status, level
):
    gswarm_app.context.runtime.nodes.get("node1").report["devices"]["dram"]["available"] = 1000
    caplog.set_level(logging.DEBUG)
    code, reply, _ = await api(method, path, body=body)
    assert code == status, reply
    ours = [r for r in caplog.records if r.name == "gswarm_jupyter.server"]
    assert [(r.levelno, str(status) in r.getMessage()) for r in ours] == [(level, True)]
    tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert tracebacks == [], [r.getMessage() for r in tracebacks]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]  # Jupyter's access line too
    assert errors == [], [(r.name, r.getMessage()) for r in errors]
