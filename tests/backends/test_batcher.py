"""The batching loop in front of a real torch runner."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import numpy as np
import pytest
from gswarm_kernels import init_params, parse_builtin_url

from gswarm_jupyter.backends.base import GenerateOptions
from gswarm_jupyter.backends.batcher import Batcher
from gswarm_jupyter.backends.registry import load_runner
from gswarm_jupyter.core.errors import InvalidInputData, ResourceUnavailable


def runner(url):
    spec = parse_builtin_url(url)
    return load_runner("torch", spec.arch, spec.config, init_params(spec.arch, spec.config, spec.seed), "cpu")


MLP = "builtin://mlp?in=8&hidden=16&out=4"
GPT = "builtin://gpt?vocab=32&d_model=16&layers=1&heads=2&context=8"
X = np.random.default_rng(0).standard_normal((10, 8)).astype(np.float32)


async def _concurrent(batcher, requests):
    return await asyncio.gather(*(batcher.submit(r) for r in requests))


def test_concurrent_rows_share_batches_and_long_requests_are_split():
    r = runner(MLP)
    batcher = Batcher(r, max_batch_size=4, batch_timeout_ms=200)
    served = asyncio.run(_concurrent(batcher, [X[i : i + 1] for i in range(6)] + [X]))
    direct = np.asarray(r.run(list(X), GenerateOptions()))
    for i in range(6):
        np.testing.assert_allclose(served[i].rows, direct[i : i + 1], atol=1e-6)
    np.testing.assert_allclose(served[6].rows, direct, atol=1e-6)
    stats = batcher.stats()
    sizes = {int(k): v for k, v in stats["batch_size_histogram"].items()}
    assert max(sizes) == 4 and sum(k * v for k, v in sizes.items()) == 16
    assert stats["requests_served"] == 7 and stats["queue_depth"] == 0
    assert stats["latency_p50"] > 0 and stats["latency_p99"] >= stats["latency_p50"]


def test_max_batch_size_one_runs_each_row_alone():
    batcher = Batcher(runner(MLP), max_batch_size=1, batch_timeout_ms=50)
    asyncio.run(_concurrent(batcher, [X[i : i + 1] for i in range(3)]))
    assert batcher.stats()["batch_size_histogram"] == {"1": 3}


def test_bad_rows_fail_alone_before_queueing():
    batcher = Batcher(runner(MLP), max_batch_size=8, batch_timeout_ms=50)

    async def main():
        return await asyncio.gather(batcher.submit(X[:2]), batcher.submit([[1.0]]), return_exceptions=True)

    good, bad = asyncio.run(main())
    assert len(good.rows) == 2 and isinstance(bad, InvalidInputData)
    assert batcher.stats()["requests_failed"] == 1


def test_sampled_generations_run_alone_and_stay_repeatable():
    r = runner(GPT)
    batcher = Batcher(r, max_batch_size=8, batch_timeout_ms=100)
    opts = GenerateOptions(max_tokens=4, temperature=1.0, seed=3)

    async def main():
        return await asyncio.gather(batcher.submit([[1, 2]], opts), batcher.submit([[1, 2]], opts))

    a, b = asyncio.run(main())
    assert a.rows == b.rows and a.tokens_generated == 4
    assert batcher.stats()["batch_size_histogram"] == {"1": 2}


def test_drain_refuses_new_requests_and_close_frees():
    batcher = Batcher(runner(MLP), max_batch_size=4, batch_timeout_ms=1)

    async def main():
        await batcher.submit(X[:1])
        await batcher.drain()
        with pytest.raises(ResourceUnavailable):
            await batcher.submit(X[:1])
        batcher.close()

    asyncio.run(main())
    batcher.runner.close()
    assert batcher.runner.memory_bytes() == 0


def test_a_lone_row_leaves_at_once_and_rows_gather_while_a_batch_computes():
    """The compute thread free: a row waits for no company (60 s of batch wait not sat out).
    A batch computing: later rows gather; a full next batch is handed over at once, and a row
    after it waits for the compute thread. Each answers what it answers alone."""
    r = runner(MLP)
    gate = threading.Event()

    @contextlib.contextmanager
    def turn():  # the device's turn, held until the test lets the first forward run
        assert gate.wait(60)
        yield

    batcher = Batcher(r, max_batch_size=3, batch_timeout_ms=60_000, turn=turn)

    async def until(depth):
        for _ in range(6000):
            await asyncio.sleep(0.01)
            if batcher.queue_depth == depth:
                return
        raise AssertionError(f"queue depth {batcher.queue_depth}, not {depth}")

    async def main():
        first = asyncio.ensure_future(batcher.submit(X[:1]))
        await until(0)  # handed to the compute thread without waiting for company
        rest = [asyncio.ensure_future(batcher.submit(X[i : i + 1])) for i in range(1, 5)]
        await until(1)  # the full next batch was handed over; the fifth row waits
        gate.set()
        return await asyncio.wait_for(asyncio.gather(first, *rest), 60)

    served = asyncio.run(main())
    alone = [r.run([row], GenerateOptions()) for row in X[:5]]
    for got, want in zip(served, alone, strict=True):
        np.testing.assert_allclose(got.rows, want, atol=1e-6)
    assert batcher.stats()["batch_size_histogram"] == {"1": 2, "3": 1}
