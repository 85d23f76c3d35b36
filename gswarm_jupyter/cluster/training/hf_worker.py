"""Worker side of training and quantising a Hugging Face model (a packed model directory).

A trained or quantised model is saved as a Hugging Face directory (config.json, model.safetensors,
tokenizer.json, sentence-transformers files) and stored packed, exactly as a registered directory
is, so every tier serves, moves and checksums it as any other copy. An `embedding` model trained on
labels gains a classification head of as many classes as the labels name and becomes a
`classifier` (a `BertForSequenceClassification` directory); other models keep their type.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from distributed import get_worker

from ...backends import hf_model, hf_ops
from ...backends.training import label_classes
from ..runtime.signals import TaskSignal
from ..storage import weightfile
from ..storage.weightstore import WeightStore


def packed_weights(raw: np.ndarray) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    """(arch, config with the text files, tensor views) of a packed copy's bytes."""
    described = weightfile.describe(raw)
    config = {**described.config, "files": weightfile.packed_files(raw)}
    return described.arch, config, weightfile.numpy_views(raw, described.tensors)


def model_of(config: dict[str, Any], params: dict[str, np.ndarray], labels: Any = None,
             seed: int = 0, training: bool = False) -> Any:
    """The HFModel of a stored copy; to train an embedding model, served as a classifier."""
    model_type, num_labels = config.get("model_type"), config.get("num_labels")
    if training and model_type == "embedding":
        model_type, num_labels = "classifier", label_classes(labels)
    return hf_model.read_model_files(config["files"], params, model_type,
                                     num_labels=num_labels, seed=seed)


def train(config: dict[str, Any], params: dict[str, np.ndarray], inputs: Any, labels: Any,
          framework: str, device: str, **options: Any) -> tuple[Any, Any]:
    """(the kernel's result, the trained model)."""
    model = model_of(config, params, labels, options.get("seed", 0), training=True)
    result = hf_ops.train_model(framework, model, inputs, labels, device=device, **options)
    return result, model._replace(params=result.params)


def store(model: Any, name: str, version: int, signal: TaskSignal,
          progress_range: tuple[float, float] = (0.0, 100.0)) -> dict[str, Any]:
    """Save `model` as a Hugging Face directory and store it packed as `version` of `name` on this
    node's disk; answers what was stored (with the worker's address)."""
    worker = get_worker()
    weights = WeightStore.of(worker)
    staging = weights.folder / weights.STAGING
    staging.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=staging, prefix=f"{signal.task_id}-save-") as scratch:
        folder = Path(scratch) / "model"
        hf_ops.save_model(model, folder)
        signal.check()
        spec = model.spec
        stored = weights.write_model_dir(
            name, version, "disk", folder, signal, model_type=spec.model_type,
            num_labels=len(spec.labels) if spec.model_type == "classifier" else None,
            progress_range=progress_range)
    stored["worker"] = worker.address
    return stored


def quantize(config: dict[str, Any], params: dict[str, np.ndarray], precision: str,
             calibration: Any, seed: int) -> tuple[Any, Any]:
    """(the quantised model, the report measured against the original on `calibration`)."""
    model = model_of(config, params)
    report = hf_ops.quantize_and_measure(model, precision, calibration, seed=seed)
    return model._replace(params=report.params), report
