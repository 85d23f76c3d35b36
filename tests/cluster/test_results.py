"""`runtime.results`, the executor's batched fetch of finished futures' values, over real Dask
futures: values reported together come back in one gather, each caller gets its own value, and a
worker op's failure or a cancellation is raised for its own future alone."""

from __future__ import annotations

import asyncio

import pytest
from distributed import Client

from gswarm_jupyter.cluster.runtime.results import Results
from gswarm_jupyter.cluster.runtime.signals import WorkerOpError

from .test_watch import add, missing_model, nap, one_node


async def test_values_reported_together_travel_in_one_gather(tmp_path, monkeypatch):
    async with one_node(tmp_path) as runtime:
        client = runtime.require_client()
        futures = [client.submit(add, i, 1, pure=False) for i in range(20)]
        await client.gather(futures)  # all reported before anyone asks
        gathers: list[int] = []
        gather = Client.gather

        def counted(self, futures, *args, **kwargs):
            gathers.append(len(futures))
            return gather(self, futures, *args, **kwargs)

        monkeypatch.setattr(Client, "gather", counted)
        results = Results()
        values = await asyncio.gather(*(results.get(f) for f in futures))
        assert values == [i + 1 for i in range(20)]
        assert gathers == [20]


async def test_a_failure_or_cancellation_is_raised_for_its_own_future_only(tmp_path):
    async with one_node(tmp_path) as runtime:
        client = runtime.require_client()
        results = Results()
        good = client.submit(add, 2, 3, pure=False)
        bad = client.submit(missing_model, pure=False)
        slow = client.submit(nap, 5.0, pure=False)
        waiting = asyncio.ensure_future(results.get(slow))
        answers = await asyncio.gather(results.get(good), results.get(bad),
                                       return_exceptions=True)
        assert answers[0] == 5 and isinstance(answers[1], WorkerOpError)
        await client.cancel([slow])
        with pytest.raises(Exception) as caught:
            await asyncio.wait_for(waiting, 30)
        assert type(caught.value).__name__ in ("CancelledError", "FutureCancelledError")
