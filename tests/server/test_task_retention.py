"""The task store through a real server: a training request's inline rows are written to the
database once, however many progress updates follow; old finished tasks leave memory and the
database on the periodic sweep while live ones stay."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from gswarm_jupyter.core.db import Database

from .model_helpers import register

C = "gswarm/compute/v1"
Q = "gswarm/api/v1/queue"
MLP = "builtin://mlp?in=8&hidden=16&out=4&seed=0"
FINISHED = ("completed", "failed", "cancelled")


@pytest.fixture
def gswarm_config(gswarm_config):
    gswarm_config.update(task_history_max=2, task_history_sweep_seconds=0.2)
    return gswarm_config


def start_counting(db: Database) -> None:
    """From now on every page SQLite writes stays in the WAL file (no checkpoint moves it out)."""
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert wal_bytes(db) == 0


def wal_bytes(db: Database) -> int:
    return db.path.with_name(db.path.name + "-wal").stat().st_size


def training(model_id: str, rows: int, epochs: int, **extra):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, 8))
    y = (x[:, 0] > 0).astype(np.int64)
    return {"model_id": model_id, "training_data": x.tolist(), "labels": y.tolist(),
            "epochs": epochs, "learning_rate": 0.01, "update_model": False,
            "hyperparameters": {"batch_size": 1024}, **extra}


async def train_async(api, body) -> dict:
    status, env, _ = await api("POST", f"{C}/training/async", body=body)
    assert status == 202, env
    return env["data"]


async def training_status(api, request_id: str) -> dict:
    status, env, _ = await api("GET", f"{C}/training/{request_id}")
    assert status == 200, env
    return env["data"]


async def wait_finished(api, request_id: str) -> dict:
    for _ in range(1200):
        done = await training_status(api, request_id)
        if done["status"] in FINISHED:
            return done
        await asyncio.sleep(0.1)
    raise AssertionError(f"training {request_id} did not finish")


async def test_inline_training_rows_are_written_once(api, gswarm_app):
    await register(api, "big", MLP)
    body = training("big", rows=10_000, epochs=20)
    size = len(json.dumps({"training_data": body["training_data"], "labels": body["labels"]}))
    assert size > 1_500_000
    db = gswarm_app.context.db
    start_counting(db)

    accepted = await train_async(api, body)
    done = await wait_finished(api, accepted["request_id"])
    assert done["status"] == "completed", done
    assert done["epochs_completed"] == 20 and done["progress"] == 100
    # Once in, once zeroed when the finished task lets it go; each of the 20+ progress
    # updates rewrites a small row only.
    assert wal_bytes(db) < 2.5 * size
    assert db.one("SELECT count(*) FROM task_payloads")[0] == 0
    status, env, _ = await api("GET", f"{Q}/tasks/{accepted['task_id']}")
    assert status == 200 and env["data"]["status"] == "completed"
    assert set(env["data"]) == {
        "task_id", "task_type", "priority", "status", "dependencies", "resources",
        "created_at", "started_at", "completed_at", "progress", "result", "error"}


async def test_old_finished_tasks_leave_memory_and_database_live_ones_stay(api, gswarm_app):
    await register(api, "long", MLP)
    await register(api, "quick", MLP)
    long = await train_async(api, training("long", rows=64, epochs=100_000,
                                           hyperparameters={"batch_size": 4}))
    for _ in range(600):
        if (await training_status(api, long["request_id"]))["status"] == "running":
            break
        await asyncio.sleep(0.1)
    quick = []
    for _ in range(4):
        accepted = await train_async(api, training("quick", rows=64, epochs=1))
        assert (await wait_finished(api, accepted["request_id"]))["status"] == "completed"
        quick.append(accepted["task_id"])

    for _ in range(100):  # the sweep runs every 0.2 s
        status, _, _ = await api("GET", f"{Q}/tasks/{quick[1]}")
        if status == 404:
            break
        await asyncio.sleep(0.1)
    assert status == 404
    status, env, _ = await api("GET", f"{Q}/history")
    assert [t["task_id"] for t in env["data"]["tasks"]] == [quick[3], quick[2]]
    # The default limit follows the worker threads the scheduler reports (2 nodes x 2 threads).
    status, env, _ = await api("GET", Q)
    threads = sum(n.threads for n in gswarm_app.context.runtime.nodes.online())
    assert threads == 4 and env["data"]["config"]["max_concurrent_tasks"] == 8 * threads
    status, env, _ = await api("GET", f"{Q}/tasks")
    listed = {t["task_id"]: t["status"] for t in env["data"]["tasks"]}
    assert listed == {long["task_id"]: "running", quick[2]: "completed", quick[3]: "completed"}
    rows = gswarm_app.context.db.all("SELECT task_id FROM tasks ORDER BY seq")
    assert [r["task_id"] for r in rows] == [long["task_id"], quick[2], quick[3]]
    status, env, _ = await api("GET", f"{C}/training/{long['request_id']}")
    assert env["data"]["status"] == "running"

    status, env, _ = await api("POST", f"{Q}/tasks/{long['task_id']}/cancel")
    assert status == 200, env
