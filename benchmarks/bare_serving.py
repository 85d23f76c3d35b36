"""The least a Jupyter route can do to serve a model here: the floor under bench_serving's lone
and batching figures (a Jupyter server extension, loaded by that benchmark only).

`POST /bench/serve/{limit}` takes `{"input_data": rows}` with the Jupyter token and answers
`{"output_data": rows}`: no gswarm code on the way, no worker process, no session, audit or
metrics. The forward runs on one compute thread of the server's own process (never on the event
loop), the model built from `GSWARM_BENCH_MODEL` (a builtin URL, the same weights as the served
model) on `GSWARM_BENCH_THREADS` torch threads. Rows that arrive while a forward runs wait for the
next one, up to `limit` rows a forward (whole requests): `limit` 1 forwards each request alone. A
lone request leaves at once, as gswarm's batcher lets it.

Invariant: every request gets the rows of its own input back, in order.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

_POOL = ThreadPoolExecutor(1, thread_name_prefix="bench-bare-compute")


class _Model:
    """The forward pass of the benchmark's model, on the compute thread (built there, so that
    torch's OpenMP team is that thread's alone)."""

    def __init__(self, url: str, threads: int) -> None:
        self.url, self.threads = url, threads
        self.module: Any = None

    def build(self) -> None:
        """Import torch and build the module, at the first forward: a server that never serves
        the bare route keeps its heap, and its collections, as gswarm's figures find them."""
        import torch

        from .bench_serving import _direct  # the direct baseline's module: the same weights

        torch.set_num_threads(self.threads)
        self.module, _ = _direct(self.url)

    def forward(self, x: np.ndarray) -> np.ndarray:
        from gswarm_kernels.torch_infer import predict

        if self.module is None:
            self.build()
        return predict(self.module, x)


class _Batches:
    """Requests' rows queued while a forward runs, joined into the next (at most `limit` rows)."""

    def __init__(self, model: _Model, limit: int) -> None:
        self.model, self.limit = model, limit
        self.waiting: deque[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = deque()
        self.drain: asyncio.Future[None] | None = None  # the one under way (kept referenced)

    async def submit(self, rows: np.ndarray) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((rows, future))
        if self.drain is None or self.drain.done():
            self.drain = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self.waiting:  # done once it is empty: no await between that test and the end
            taken = [self.waiting.popleft()]
            count = len(taken[0][0])
            while self.waiting and count + len(self.waiting[0][0]) <= self.limit:
                taken.append(self.waiting.popleft())
                count += len(taken[-1][0])
            try:
                out = await loop.run_in_executor(
                    _POOL, self.model.forward, np.concatenate([rows for rows, _ in taken]))
            except Exception as exc:  # noqa: BLE001 (every waiting request gets it)
                for _, future in taken:
                    future.set_exception(exc)
                continue
            start = 0
            for rows, future in taken:
                future.set_result(out[start:start + len(rows)])
                start += len(rows)


class ServeHandler(APIHandler):
    def initialize(self, batches: dict[int, _Batches]) -> None:
        self.batches = batches

    @web.authenticated
    async def post(self, limit: str) -> None:
        batches = self.batches.get(int(limit))
        if batches is None:
            raise web.HTTPError(404)
        rows = np.asarray(json.loads(self.request.body)["input_data"], dtype=np.float32)
        out = await batches.submit(rows)
        self.finish(json.dumps({"output_data": out.tolist()}))


def _jupyter_server_extension_points():
    return [{"module": "benchmarks.bare_serving"}]


def _load_jupyter_server_extension(serverapp):
    model = _Model(os.environ["GSWARM_BENCH_MODEL"], int(os.environ["GSWARM_BENCH_THREADS"]))
    batches = {limit: _Batches(model, limit) for limit in (1, 32)}
    base = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(
        ".*$", [(url_path_join(base, r"/bench/serve/(\d+)"), ServeHandler, {"batches": batches})])
