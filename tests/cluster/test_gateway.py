"""The serving gateway against a real Dask cluster (two in-process workers, a real `ServiceActor`
replica of a small MLP on each): requests spread over live replicas, a session's pinned replica
answers while it lives, a lost replica's request is answered by a live one, and with no live
replica left a request fails with RESOURCE_UNAVAILABLE naming the replicas lost; requests that
arrive together travel to their replica in one message, each answered or failed on its own. Read
as its specification."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import dask
import numpy as np
import pytest
from distributed import Worker
from distributed.actor import ProxyRPC
from gswarm_kernels import init_params, parse_builtin_url

from gswarm_jupyter.cluster.runtime.cluster import ClusterConfig, ClusterRuntime
from gswarm_jupyter.cluster.serving.actor import ServiceActor
from gswarm_jupyter.cluster.serving.channel import ReplicaChannel
from gswarm_jupyter.cluster.serving.gateway import Gateway
from gswarm_jupyter.cluster.serving.lane import LaneClient, host_id
from gswarm_jupyter.cluster.serving.replicas import Replica, Service, call, channel_of, watched
from gswarm_jupyter.cluster.storage.weights import ModelSpec
from gswarm_jupyter.core.errors import InvalidInputData, ResourceUnavailable
from gswarm_jupyter.core.serving_api import ServiceConfig

MLP = "builtin://mlp?in=8&hidden=16&out=4"
ROWS = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32).tolist()


def mlp_weights() -> tuple[str, dict, dict]:
    """The loader each replica runs on its worker (picklable: a module function)."""
    spec = parse_builtin_url(MLP)
    return spec.arch, spec.config, init_params(spec.arch, spec.config, spec.seed)


@contextlib.asynccontextmanager
async def two_replicas(tmp_path) -> AsyncIterator[tuple[ClusterRuntime, Gateway, Service]]:
    """A service `mlp-s` with a running replica on node1 and one on node2, behind a gateway."""
    runtime = ClusterRuntime(ClusterConfig(local_nodes=2, local_processes=False,
                                           data_dir=tmp_path, worker_memory_limit="8GiB"))
    await runtime.start()
    try:
        await runtime.wait_ready(120)
        spec = parse_builtin_url(MLP)
        model = ModelSpec("mlp", spec.arch, spec.config, MLP)
        replicas = [Replica(f"mlp-s{'' if i == 0 else f'.{i}'}", node, "dram",
                            runtime.nodes.get(node).address)
                    for i, node in enumerate(("node1", "node2"))]
        service = Service("mlp-s", model, ServiceConfig(), replicas)
        for replica in replicas:
            await start_actor(runtime, replica)
        announced: list[str] = []
        gateway = Gateway(runtime.nodes, {service.service_id: service}, announced.append)
        gateway.balance("mlp", "round_robin")
        yield runtime, gateway, service
        for replica in replicas:
            if replica.channel is not None:
                replica.channel.close()
    finally:
        await runtime.stop()


async def start_actor(runtime: ClusterRuntime, replica: Replica) -> None:
    replica.future = runtime.require_client().submit(
        ServiceActor, replica.replica_id, "torch", "dram", mlp_weights, 8, 1.0,
        actor=True, workers=[replica.address], allow_other_workers=False, pure=False,
        key=f"test-gateway-{replica.replica_id}-{time.time_ns()}",
    )
    replica.actor = await watched(runtime.nodes, replica, replica.future, 60)
    replica.lane = (await call(runtime.nodes, replica, "start", timeout=60))["lane"]
    replica.status = "running"


async def lose_worker(address: str) -> None:
    """The replica's worker goes away (closed, as a killed in-process worker would be)."""
    [worker] = [w for w in Worker._instances if w.address == address]
    await worker.close(timeout=10)


async def test_requests_spread_round_robin_over_the_live_replicas(tmp_path):
    async with two_replicas(tmp_path) as (_, gateway, service):
        answered = []
        for _ in range(4):
            result, replica = await gateway.infer("mlp", ROWS, {})
            assert np.asarray(result["output_data"]).shape == (2, 4)
            answered.append(replica.replica_id)
        assert answered == ["mlp-s", "mlp-s.1", "mlp-s", "mlp-s.1"]
        assert all(r.inflight == 0 for r in service.replicas)


async def test_a_session_stays_on_its_pinned_replica(tmp_path):
    async with two_replicas(tmp_path) as (_, gateway, service):
        pinned = gateway.find_replica("mlp-s.1")
        assert pinned is service.replicas[1]
        answered = [(await gateway.infer("mlp", ROWS, {}, prefer=pinned))[1] for _ in range(3)]
        assert answered == [pinned, pinned, pinned]
        assert gateway.service_of(pinned) is service


async def test_requests_arriving_together_go_in_one_message_each_with_its_own_outcome(tmp_path):
    async with two_replicas(tmp_path) as (_, gateway, service):
        first = service.replicas[0]
        alone, _ = await gateway.infer("mlp", ROWS, {}, prefer=first)
        channel = channel_of(first)
        sent: list[int] = []  # requests per message
        send = channel.call

        def spy(method, *args):
            sent.append(len(args[0]))
            return send(method, *args)

        channel.call = spy
        bad = [[1.0, 2.0]]  # 2 values where the model takes 8
        outcomes = await asyncio.gather(
            *(gateway.infer("mlp", bad if i == 5 else ROWS, {}, prefer=first) for i in range(12)),
            return_exceptions=True,
        )

        assert isinstance(outcomes[5], InvalidInputData)  # fails alone
        for i, outcome in enumerate(outcomes):
            if i != 5:
                result, replica = outcome
                assert replica is first
                np.testing.assert_allclose(result["output_data"], alone["output_data"], rtol=1e-5)
        assert sum(sent) == 12 and len(sent) < 12
        assert first.inflight == 0

        # a message holds at most the batch limit's rows (one forward pass); a longer request alone
        client = first.actor._client
        capped = ReplicaChannel(client.rpc(first.address), first.actor.key, first.address,
                                batch_rows=4)
        rows: list[list[int]] = []  # rows of each request, per message
        send_capped = capped.call

        def spy_rows(method, *args):
            rows.append([len(r) for r, _ in args[0]])
            return send_capped(method, *args)

        capped.call = spy_rows
        six = ROWS * 3
        answers = await asyncio.gather(*(capped.infer(six if i == 2 else ROWS, {})
                                         for i in range(6)))
        assert sum(map(len, rows)) == 6 and [6] in rows  # in queue order: [2, 2], [6], ...
        assert all(sum(m) <= 4 for m in rows if m != [6]) and max(map(len, rows)) == 2
        for i, answer in enumerate(answers):
            want = alone["output_data"] * (3 if i == 2 else 1)
            np.testing.assert_allclose(answer["output_data"], want, rtol=1e-5)


async def test_a_worker_not_reached_directly_is_called_through_the_scheduler(tmp_path):
    async with two_replicas(tmp_path) as (runtime, _, service):
        first = service.replicas[0]
        client = runtime.require_client()
        with socket.socket() as s:  # a loopback port nothing listens on: no direct way there
            s.bind(("127.0.0.1", 0))
            closed = f"{first.address.split('://')[0]}://127.0.0.1:{s.getsockname()[1]}"
        channel = ReplicaChannel(client.rpc(closed), first.actor.key, first.address,
                                 relayed=ProxyRPC(client.scheduler, first.address))
        with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
            result = await channel.infer(ROWS, {})
            assert len(result["output_data"]) == 2
            assert (await channel.call("stats"))["requests_served"] == 1


async def test_a_replica_on_this_host_answers_over_its_lane_and_an_unreachable_lane_is_given_up(
        tmp_path):
    async with two_replicas(tmp_path) as (runtime, gateway, service):
        first = service.replicas[0]
        assert first.lane is not None and first.lane["host"] == host_id()
        channel = channel_of(first)
        sent_on_lane: list[str] = []
        lane_call = channel._lane.call

        def spy(method, *args):
            sent_on_lane.append(method)
            return lane_call(method, *args)

        channel._lane.call = spy
        result, replica = await gateway.infer("mlp", ROWS, {}, prefer=first)
        assert replica is first and len(result["output_data"]) == 2
        assert sent_on_lane == ["infer_many"]

        client = runtime.require_client()
        nowhere = LaneClient("\0gswarm-lane-nobody-listens")
        fallback = ReplicaChannel(client.rpc(first.address), first.actor.key, first.address,
                                  lane=nowhere)
        result = await fallback.infer(ROWS, {})
        assert len(result["output_data"]) == 2  # answered over the Dask comm
        assert fallback._lane is None  # and the lane given up


async def test_a_lost_replicas_request_is_answered_by_a_live_one(tmp_path):
    async with two_replicas(tmp_path) as (_, gateway, service):
        first, second = service.replicas
        await lose_worker(first.address)

        result, replica = await gateway.infer("mlp", ROWS, {}, prefer=first)

        assert replica is second and len(result["output_data"]) == 2
        assert first.status == "failed" and first.error.startswith("worker lost:")
        assert first.waiting  # down: the keeper will load it again
        assert service.status == "degraded"
        assert gateway.live_replicas("mlp") == [second]


async def test_with_every_replica_lost_a_request_fails_naming_them(tmp_path):
    async with two_replicas(tmp_path) as (_, gateway, service):
        for replica in service.replicas:
            await lose_worker(replica.address)

        with pytest.raises(ResourceUnavailable) as caught:
            await gateway.infer("mlp", ROWS, {})

        assert caught.value.code == "RESOURCE_UNAVAILABLE"
        assert "has no live replica: its replicas were lost" in caught.value.message
        assert sorted(caught.value.details["lost"]) == ["mlp-s", "mlp-s.1"]
        assert {r.status for r in service.replicas} == {"failed"}
        assert service.status == "failed"
