from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from gswarm_kernels import train_jax, train_torch
from gswarm_kernels.builtin import normalize_config
from gswarm_kernels.jax_models import forward
from gswarm_kernels.params import init_params

from .conftest import GPT

TRAINERS = {"torch": train_torch.train, "jax": train_jax.train}
SMALL = {"in": 4, "hidden": [16], "out": 2, "activation": "relu"}
TINY_GPT = GPT | {"layers": 1, "heads": 2, "vocab": 12}


@pytest.fixture(scope="module")
def toy():
    """A linearly separable two-class problem."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 4)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


@pytest.mark.parametrize("framework", TRAINERS)
def test_loss_decreases_on_a_learnable_task(framework, toy):
    x, y = toy
    result = TRAINERS[framework](
        "mlp",
        SMALL,
        init_params("mlp", SMALL, 0),
        x,
        y,
        epochs=8,
        learning_rate=0.02,
        batch_size=16,
    )
    assert len(result.loss_history) == 8 and result.steps == 8 * 3
    assert result.loss_history[-1] < 0.5 * result.loss_history[0]


@pytest.mark.parametrize(
    ("optimizer", "loss", "extra"),
    [
        ("adam", "cross_entropy", {"weight_decay": 0.01}),
        ("adamw", "cross_entropy", {"weight_decay": 0.1, "gradient_clip_norm": 0.5}),
        ("sgd", "mse", {"weight_decay": 0.01, "gradient_clip_norm": 1.0}),
    ],
)
def test_torch_and_jax_reach_the_same_loss(toy, optimizer, loss, extra):
    """Same init, batch order and optimizer maths: within 1e-3 relative (float32 noise only)."""
    x, y = toy
    labels = np.eye(2, dtype=np.float32)[y] if loss == "mse" else y
    params = init_params("mlp", SMALL, 0)
    kwargs = (
        dict(epochs=6, learning_rate=0.02, optimizer=optimizer, loss=loss, batch_size=16, seed=4)
        | extra
    )
    a = train_torch.train("mlp", SMALL, params, x, labels, **kwargs)
    b = train_jax.train("mlp", SMALL, params, x, labels, **kwargs)
    assert a.loss_history[-1] < a.loss_history[0]
    np.testing.assert_allclose(a.loss_history, b.loss_history, rtol=1e-3)
    for name in params:
        np.testing.assert_allclose(a.params[name], b.params[name], atol=1e-3)


@pytest.mark.parametrize("framework", TRAINERS)
def test_probability_rows_train_like_class_indices(framework, toy):
    x, y = toy
    params = init_params("mlp", SMALL, 0)
    kwargs = dict(epochs=2, learning_rate=0.02, batch_size=16)
    by_index = TRAINERS[framework]("mlp", SMALL, params, x, y, **kwargs)
    by_rows = TRAINERS[framework]("mlp", SMALL, params, x, np.eye(2)[y].tolist(), **kwargs)
    np.testing.assert_allclose(by_index.loss_history, by_rows.loss_history, rtol=1e-5)


@pytest.mark.parametrize("framework", TRAINERS)
def test_gpt_learns_next_tokens(framework):
    rows = [[(start + i) % 5 for i in range(9)] for start in range(10)] + [[1, 2, 3]]  # ragged
    result = TRAINERS[framework](
        "gpt",
        TINY_GPT,
        init_params("gpt", TINY_GPT, 0),
        rows,
        None,
        epochs=20,
        learning_rate=0.03,
        batch_size=11,
    )
    assert result.loss_history[0] > 2.0 and result.loss_history[-1] < 0.1  # the cycle is learnt


@pytest.mark.parametrize("framework", TRAINERS)
def test_gpt_takes_explicit_target_rows(framework):
    # Shapes and hyperparameters as in the test above, so JAX reuses its compiled step.
    rows = [[(start + i) % 12 for i in range(8)] for start in range(11)]
    targets = [[(t + 1) % 12 for t in row] for row in rows]
    next_token = TRAINERS[framework](
        "gpt",
        TINY_GPT,
        init_params("gpt", TINY_GPT, 0),
        [row + [(row[-1] + 1) % 12] for row in rows],
        None,
        epochs=2,
        learning_rate=0.03,
        batch_size=11,
    )
    explicit = TRAINERS[framework](
        "gpt",
        TINY_GPT,
        init_params("gpt", TINY_GPT, 0),
        rows,
        targets,
        epochs=2,
        learning_rate=0.03,
        batch_size=11,
    )
    assert explicit.steps == 2
    np.testing.assert_allclose(explicit.loss_history, next_token.loss_history, rtol=1e-6)


@pytest.mark.parametrize("framework", TRAINERS)
def test_nan_loss_names_the_epoch(framework, toy):
    x, y = toy
    x = x.copy()
    x[3, 0] = np.inf
    with pytest.raises(FloatingPointError, match="epoch 1"):
        TRAINERS[framework](
            "mlp",
            SMALL,
            init_params("mlp", SMALL, 0),
            x,
            y,
            epochs=2,
            learning_rate=0.01,
            batch_size=16,
        )


@pytest.mark.parametrize("framework", TRAINERS)
def test_diverging_training_is_stopped(framework, toy):
    x, _ = toy
    targets = np.full((len(x), 2), 1e3, dtype=np.float32)
    with pytest.raises(FloatingPointError, match=r"epoch \d+"):
        TRAINERS[framework](
            "mlp",
            SMALL,
            init_params("mlp", SMALL, 0),
            x,
            targets,
            epochs=20,
            learning_rate=10.0,
            optimizer="sgd",
            loss="mse",
            batch_size=48,
        )


@pytest.mark.parametrize("framework", TRAINERS)
def test_callbacks_report_epochs_and_can_stop(framework, toy):
    x, y = toy
    params = init_params("mlp", SMALL, 0)
    seen: list[tuple[int, float]] = []
    result = TRAINERS[framework](
        "mlp",
        SMALL,
        params,
        x,
        y,
        epochs=3,
        learning_rate=0.01,
        batch_size=16,
        on_epoch=lambda epoch, loss: seen.append((epoch, loss)),
    )
    assert seen == list(enumerate(result.loss_history, start=1))
    checks = iter(range(100))
    stopped = TRAINERS[framework](
        "mlp",
        SMALL,
        params,
        x,
        y,
        epochs=3,
        learning_rate=0.01,
        batch_size=16,
        should_stop=lambda: next(checks) >= 4,
    )
    assert stopped.steps == 4 and stopped.loss_history == result.loss_history[:1]
    assert not np.array_equal(stopped.params["layers.0.weight"], params["layers.0.weight"])
    np.testing.assert_array_equal(
        params["layers.0.weight"], init_params("mlp", SMALL, 0)["layers.0.weight"]
    )


@pytest.mark.parametrize(
    ("arch", "inputs", "labels", "kwargs", "message"),
    [
        ("mlp", "x", [0, 1], {}, r"labels: expected 48 entries \(one per row\), got 2"),
        ("mlp", "x", [2] * 48, {}, r"labels: class indices must be in \[0, 2\), got 2"),
        ("mlp", "x", None, {}, "labels: required"),
        (
            "mlp",
            "x",
            np.zeros((48, 3)),
            {"loss": "mse"},
            r"labels: expected target rows of width 2, got shape \(48, 3\)",
        ),
        ("mlp", [[1.0, 2.0]], [0], {}, r"training_data: expected shape \(rows, 4\), got \(1, 2\)"),
        ("mlp", "x", "y", {"optimizer": "rmsprop"}, "^optimizer"),
        ("mlp", "x", "y", {"loss": "hinge"}, "^loss_function"),
        ("mlp", "x", "y", {"batch_size": 0}, "^batch_size"),
        ("mlp", "x", "y", {"learning_rate": -1.0}, "^learning_rate"),
        ("gpt", [[1, 2, 3]], None, {"loss": "mse"}, "cross_entropy"),
        ("gpt", [[1]], None, {}, r"training_data\[0\]: expected 2 to 13 tokens"),
        ("gpt", [[1, 99]], None, {}, r"token ids must be in \[0, 12\), got 99"),
        ("gpt", [[1, 2]], [[1, 2, 3]], {}, r"labels\[0\]: expected 2 tokens"),
    ],
)
def test_bad_training_requests_are_refused(toy, arch, inputs, labels, kwargs, message):
    x, y = toy
    inputs = x if isinstance(inputs, str) else inputs
    labels = y if isinstance(labels, str) else labels
    config = SMALL if arch == "mlp" else TINY_GPT
    params = init_params(arch, config, 0)
    for train in TRAINERS.values():
        with pytest.raises(ValueError, match=message):
            train(
                arch,
                config,
                params,
                inputs,
                labels,
                **({"epochs": 1, "learning_rate": 0.01} | kwargs),
            )


def test_jax_steps_write_into_their_own_state_never_the_callers(toy):
    """The jitted step donates the parameters, moments and loss total it is given (XLA reuses
    their buffers for the new ones), gathers its batch's rows on the device, and the trainer
    gives it copies of its own."""
    x, y = toy
    params = init_params("mlp", SMALL, 0)
    config = json.dumps(normalize_config("mlp", SMALL), sort_keys=True)
    tx, step = train_jax._compiled("mlp", config, "index", "adam", 0.01, 0.0, None)
    state = train_jax.own_copy(params)
    opt_state = tx.init(state)
    total = jnp.zeros(())
    rows = np.arange(16, dtype=np.int32)
    new_state, _, new_total = step(state, opt_state, total, train_jax.device_rows(x),
                                   train_jax.device_rows(y), None, rows)
    assert all(array.is_deleted() for array in state.values()) and total.is_deleted()
    assert not any(array.is_deleted() for array in new_state.values())
    before = train_jax.own_copy(params)  # the loss the step saw: its 16 rows at the old weights
    out = forward("mlp", normalize_config("mlp", SMALL), before, jnp.asarray(x[:16]))
    expected = 16 * float(train_jax.batch_loss_of("index", out, jnp.asarray(y[:16]), None))
    assert float(new_total) == pytest.approx(expected, rel=1e-5)
    np.testing.assert_array_equal(
        params["layers.0.weight"], init_params("mlp", SMALL, 0)["layers.0.weight"]
    )
