"""Inline training rows cross to the worker as the arrays the kernel makes of them: the kernel
trains the same from them as from the JSON rows (same loss curve, same weights), for each kind of
label; rows it cannot use, and a language model's token rows, stay as they came."""

from __future__ import annotations

import numpy as np
import pytest
from gswarm_kernels import init_params, parse_builtin_url
from gswarm_kernels.train_torch import train

from gswarm_jupyter.backends.training import inline_arrays

SPEC = parse_builtin_url("builtin://mlp?in=4&hidden=8&out=3&seed=0")
X = np.random.default_rng(1).standard_normal((24, 4)).round(3).tolist()
INDEX = [i % 3 for i in range(24)]
PROBS = [[0.2, 0.3, 0.5]] * 24
VALUES = [[float(i), 1.0, -1.0] for i in range(24)]


@pytest.mark.parametrize(("labels", "loss"), [(INDEX, "cross_entropy"),
                                              (PROBS, "cross_entropy"), (VALUES, "mse")])
def test_the_arrays_train_as_the_rows_do(labels, loss) -> None:
    params = init_params(SPEC.arch, SPEC.config, SPEC.seed)
    x, y = inline_arrays("mlp", SPEC.config, X, labels, loss)
    assert isinstance(x, np.ndarray) and x.dtype == np.float32
    assert isinstance(y, np.ndarray)
    options = {"epochs": 3, "learning_rate": 0.01, "loss": loss, "batch_size": 5, "seed": 2}
    rows = train("mlp", SPEC.config, params, X, labels, **options)
    arrays = train("mlp", SPEC.config, params, x, y, **options)
    assert arrays.loss_history == rows.loss_history
    for name in rows.params:
        np.testing.assert_array_equal(arrays.params[name], rows.params[name])


def test_what_the_kernel_refuses_or_does_not_read_as_vectors_stays_as_it_came() -> None:
    ragged = [[1.0, 2.0], [1.0]]
    assert inline_arrays("mlp", SPEC.config, ragged, [0, 1], "cross_entropy") == (
        ragged, [0, 1])
    tokens = [[1, 2, 3], [4, 5]]
    assert inline_arrays("gpt", {}, tokens, None, "cross_entropy") == (tokens, None)
    assert inline_arrays("mlp", SPEC.config, X, None, "cross_entropy") == (X, None)
