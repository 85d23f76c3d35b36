"""Reading a Hugging Face model directory for the backends; kernel ValueErrors leave as API errors.

A field of the request (`optimizer`, `target_precision`, `model_type`, ...) wrong is
`InvalidRequest`; data that does not fit the model is `InvalidInputData`; a model directory that
cannot be read is `InvalidRequest` naming it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from gswarm_kernels.hf.model_dir import HFModel, checked_params, load_model_dir, load_model_files

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


def read_model_files(
    files: Mapping[str, str],
    tensors: Mapping[str, np.ndarray],
    model_type: str | None = None,
    *,
    num_labels: int | None = None,
    seed: int = 0,
) -> HFModel:
    """The model of a stored copy: its text files (relative name -> text) and its tensors."""
    try:
        return load_model_files(files, dict(tensors), model_type, num_labels=num_labels, seed=seed)
    except ValueError as exc:
        field = str(exc).split(":", 1)[0]
        if field in REQUEST_FIELDS:
            raise InvalidRequest(str(exc), {"field": field}) from None
        raise InvalidRequest(f"model directory: {exc}", {"field": "source_url"}) from None


def describe_files(
    files: Mapping[str, str], model_type: str | None = None, num_labels: int | None = None
) -> dict[str, Any]:
    """What a model directory's text files say (no tensor read): model type, the architecture
    named in config.json, family, labels, and whether it has a tokenizer; `ValueError` naming
    the field when they do not make a model the twins compute."""
    from gswarm_kernels.hf.spec import TextFiles, read_spec

    if "config.json" not in files:
        raise ValueError("model directory: expected config.json, got none")
    spec = read_spec(TextFiles(files), model_type, num_labels)
    out: dict[str, Any] = {
        "model_type": spec.model_type,
        "architecture": spec.architecture,
        "family": spec.family,
        "tokenizer": "tokenizer.json" in files,
        "max_length": spec.max_length,
    }
    if spec.model_type == "classifier":
        out["labels"] = list(spec.labels)
    return out


def check_dir(
    model_dir: str | os.PathLike[str], model_type: str | None = None, num_labels: int | None = None
) -> HFModel:
    """Read the whole directory once, every tensor's name and shape checked (`InvalidRequest`
    naming what is wrong, without the directory's path)."""
    try:
        return load_model_dir(model_dir, model_type, num_labels=num_labels)
    except ValueError as exc:
        field = str(exc).split(":", 1)[0]
        if field in REQUEST_FIELDS:
            raise InvalidRequest(str(exc), {"field": field}) from None
        message = str(exc).replace(os.fspath(model_dir), ".")
        raise InvalidRequest(f"model directory: {message}", {"field": "source_url"}) from None
