"""Reading a Hugging Face model directory for the backends; kernel ValueErrors leave as API errors.

A field of the request (`optimizer`, `target_precision`, `model_type`, ...) wrong is
`InvalidRequest`; data that does not fit the model is `InvalidInputData`; a model directory that
cannot be read is `InvalidRequest` naming it.
"""

from __future__ import annotations

import os

import numpy as np
from gswarm_kernels.hf.model_dir import HFModel, checked_params, load_model_dir

from ..core.errors import GswarmError, InvalidRequest
from .base import invalid_input

# Kernel ValueErrors start with the field they are about; these are the request's own fields.
REQUEST_FIELDS = frozenset(
    {
        "optimizer",
        "loss_function",
        "epochs",
        "batch_size",
        "learning_rate",
        "weight_decay",
        "gradient_clip_norm",
        "target_precision",
        "model_type",
        "num_labels",
    }
)


def kernel_error(exc: ValueError) -> GswarmError:
    """A kernel's `field: ...` ValueError as the API error its field calls for."""
    field = str(exc).split(":", 1)[0]
    if field in REQUEST_FIELDS:
        return InvalidRequest(str(exc), {"field": field})
    return invalid_input(exc)


def read_model(
    model_dir: str | os.PathLike[str],
    model_type: str | None = None,
    *,
    num_labels: int | None = None,
    seed: int = 0,
    params: dict[str, np.ndarray] | None = None,
) -> HFModel:
    """The model in `model_dir` served as `model_type`; `params` (same names) replace weights."""
    try:
        model = load_model_dir(model_dir, model_type, num_labels=num_labels, seed=seed)
    except ValueError as exc:
        field = str(exc).split(":", 1)[0]
        if field in REQUEST_FIELDS:
            raise InvalidRequest(str(exc), {"field": field}) from None
        raise InvalidRequest(
            f"model directory {os.fspath(model_dir)}: {exc}",
            {"field": "model_dir", "model_dir": os.fspath(model_dir)},
        ) from None
    if params is None:
        return model
    try:
        return model._replace(params=checked_params(model.spec, dict(params), seed))
    except ValueError as exc:
        raise InvalidRequest(
            f"weights for {os.fspath(model_dir)}: {exc}", {"field": "params"}
        ) from None
