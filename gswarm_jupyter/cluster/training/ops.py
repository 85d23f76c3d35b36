"""Worker side of training and optimisation: Dask ops pinned to one node.

Weights come from this node's copy (`{"device": ...}`) or from another node's copy bytes (a
`read_weights` future Dask carries here). The trained or quantised weights never leave the node:
they are written into its store as a safetensors file (a Hugging Face model as a packed model
directory, `hf_worker`), and only what was stored travels back.

Loops that run torch (training, the quantised model's measurement) run on the process's one
compute thread (`runtime.compute`), whichever executor thread took the task.
Each completed epoch is reported on `EPOCH_TOPIC` (`{task_id, epoch, epochs, loss}`) beside the
task's progress; a cancelled task stops before its next step and writes nothing.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import numpy as np
from distributed import get_worker

from ...backends import checkpoints, training
from ...backends.base import invalid_input
from ...core.errors import InvalidInputData, InvalidRequest, NotImplementedFeature, TaskFailed
from ..runtime import compute
from ..runtime.signals import TaskSignal, worker_op
from ..storage import hfdir
from ..storage.weightfile import HF_ARCH, TORCHSCRIPT_ARCH
from ..storage.weightstore import WeightStore
from . import hf_worker

EPOCH_TOPIC = "gswarm-training-epoch"

# Kernel ValueErrors start with the field they are about.
_REQUEST_FIELDS = ("optimizer", "loss_function", "epochs", "batch_size", "learning_rate",
                   "weight_decay", "gradient_clip_norm", "target_precision")
_EPOCH = re.compile(r"in epoch (\d+)")


def _weights(name: str, source: Any) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    """(arch, config, params) from this node's copy or from copy bytes: float32 params for the
    built-ins, a Hugging Face model's tensors as stored (its config holds its text files)."""
    if isinstance(source, dict):
        arch, config, params = WeightStore.of(get_worker()).load(name, source["device"])
    else:
        raw = np.asarray(source, dtype=np.uint8)
        if raw[:4].tobytes() == b"PK\x03\x04":
            arch, config, params = TORCHSCRIPT_ARCH, {}, {}
        elif hfdir.is_packed(raw[:512].tobytes()):
            try:
                arch, config, params = hf_worker.packed_weights(raw)
            except ValueError as exc:
                raise InvalidRequest(f"model {name}: {exc}", {"model_id": name}) from None
        else:
            try:
                arch, config, params = checkpoints.read_bytes(raw.tobytes())
            except ValueError as exc:
                raise InvalidRequest(f"model {name}: {exc}", {"model_id": name}) from None
    if arch == TORCHSCRIPT_ARCH:
        raise NotImplementedFeature(
            f"model {name} is a TorchScript model: only built-in architectures train and "
            "quantise here", {"model_id": name, "format": "torchscript"})
    if arch == HF_ARCH:
        return arch, config, params
    return arch, config, training.dequantize(params)


def _rows(value: Any, chunks: list[Any] | None, layouts: list[dict[str, Any]] | None,
          field: str) -> Any:
    """Inline rows, or the rows of data-pool chunks (their bytes and layouts) concatenated."""
    if chunks is None:
        return value
    parts: list[Any] = []
    for data, layout in zip(chunks, layouts or [], strict=True):
        raw = np.asarray(data, dtype=np.uint8)
        if layout["format"] == "tensor":
            array = raw.view(np.dtype(layout["dtype"])).reshape(layout["shape"])
            parts.extend(array if array.ndim > 1 else array.tolist())
        elif layout["format"] == "json":
            loaded = json.loads(raw.tobytes().decode("utf-8"))
            if not isinstance(loaded, list):
                raise InvalidInputData(f"{field}: chunk {layout['chunk_id']} holds no list of rows",
                                       {"field": field, "chunk_id": layout["chunk_id"]})
            parts.extend(loaded)
        else:
            raise InvalidInputData(
                f"{field}: chunk {layout['chunk_id']} is {layout['format']!r}; training data "
                "chunks are tensor or json", {"field": field, "chunk_id": layout["chunk_id"]})
    return parts


def _as_api_error(exc: ValueError) -> Exception:
    field = str(exc).split(":", 1)[0]
    if field in _REQUEST_FIELDS:
        return InvalidRequest(str(exc), {"field": field})
    return invalid_input(exc)


def _report_epoch(task_id: str, epoch: int, epochs: int, loss: float) -> None:
    try:
        worker = get_worker()
    except ValueError:
        return
    worker.log_event(EPOCH_TOPIC, {"task_id": task_id, "epoch": epoch, "epochs": epochs,
                                   "loss": loss})


@worker_op
def train_weights(
    name: str,
    source: Any,
    spec: dict[str, Any],
    data_chunks: list[Any] | None,
    label_chunks: list[Any] | None,
    signal: TaskSignal,
    write_version: int | None,
) -> dict[str, Any]:
    """Train `name`'s weights on this node; with `write_version`, store the result as that
    version on this node's disk. Answers the measured history and what was stored."""
    worker = get_worker()
    try:
        arch, config, params = _weights(name, source)
        inputs = _rows(spec["training_data"], data_chunks, spec.get("data_layouts"),
                       "training_data")
        labels = _rows(spec.get("labels"), label_chunks, spec.get("label_layouts"), "labels")
        epochs = int(spec["epochs"])

        def on_epoch(epoch: int, loss: float) -> None:
            signal.progress(95.0 * epoch / epochs)
            _report_epoch(signal.task_id, epoch, epochs, loss)

        common = dict(
            epochs=epochs, learning_rate=spec["learning_rate"], optimizer=spec["optimizer"],
            loss=spec["loss_function"], batch_size=spec["batch_size"],
            gradient_clip_norm=spec["gradient_clip_norm"], weight_decay=spec["weight_decay"],
            seed=spec["seed"], on_epoch=on_epoch, should_stop=lambda: signal.cancelled,
        )

        def loop() -> tuple[Any, Any, float]:
            started = time.perf_counter()
            if arch == HF_ARCH:
                result, trained = hf_worker.train(config, params, inputs, labels,
                                                  spec["framework"], spec["device"], **common)
            else:
                result, trained = training.train(spec["framework"], arch, config, params, inputs,
                                                 labels, device=spec["device"], **common), None
            return result, trained, time.perf_counter() - started

        try:
            result, trained, training_time = compute.run(signal, loop)
        except ValueError as exc:
            raise _as_api_error(exc) from None
        except FloatingPointError as exc:
            match = _EPOCH.search(str(exc))
            raise TaskFailed(f"{exc}; model {name} not updated",
                             {"epoch": int(match.group(1)) if match else None,
                              "model_id": name}) from None
        signal.check()  # cancelled during the last steps: nothing is written
        stored = None
        if write_version is not None and trained is not None:
            stored = hf_worker.store(trained, name, write_version, signal, (95.0, 100.0))
        elif write_version is not None:
            data = checkpoints.checkpoint(arch, config, result.params)
            stored = WeightStore.of(worker).write(name, write_version, "disk", data, signal,
                                                  progress_range=(95.0, 100.0))
            stored["worker"] = worker.address
        return {
            "loss_history": [float(x) for x in result.loss_history],
            "steps": result.steps,
            "training_time": training_time,
            "epochs_completed": len(result.loss_history),
            "stored": stored,
        }
    finally:
        signal.done()


def _relative_error(reference: np.ndarray, other: np.ndarray) -> float:
    scale = float(np.linalg.norm(reference))
    diff = float(np.linalg.norm(other.astype(np.float64) - reference.astype(np.float64)))
    return diff / scale if scale > 0 else diff


@worker_op
def quantize_weights(
    name: str,
    source: Any,
    target_name: str,
    precision: str,
    calibration: Any,
    seed: int,
    samples: int,
    signal: TaskSignal,
) -> dict[str, Any]:
    """Quantise `name`'s weights to `precision`, store them as `target_name` v1 on this node's
    disk, and measure the relative output error (what a service of it answers, dequantised on
    load, against the original) on `calibration` or a seeded random sample."""
    worker = get_worker()
    try:
        started = time.perf_counter()
        arch, config, params = _weights(name, source)
        if arch == HF_ARCH:
            return _quantize_hf(target_name, config, params, precision, calibration, seed,
                                signal, started)
        x = training.sample_inputs(arch, config, calibration, seed, samples)
        try:
            quantized = training.quantize(params, precision)
        except ValueError as exc:
            raise InvalidRequest(str(exc), {"field": "target_precision"}) from None
        signal.check()
        data = checkpoints.checkpoint(arch, config, quantized)
        stored = WeightStore.of(worker).write(target_name, 1, "disk", data, signal)
        reference, served = compute.run(signal, lambda: (
            training.predict(arch, config, params, x),
            training.predict(arch, config, training.dequantize(quantized), x)))
        return {
            "stored": {**stored, "worker": worker.address},
            "accuracy_loss": _relative_error(reference, served),
            "original_param_bytes": training.stored_bytes(params),
            "optimized_param_bytes": training.stored_bytes(quantized),
            "samples": int(len(x)),
            "optimization_time": time.perf_counter() - started,
        }
    finally:
        signal.done()


def _quantize_hf(target_name: str, config: dict[str, Any],
                 params: dict[str, np.ndarray], precision: str, calibration: Any, seed: int,
                 signal: TaskSignal, started: float) -> dict[str, Any]:
    """A Hugging Face model quantised, measured against the original on `calibration` (strings or
    token rows; seeded random token rows without), and stored packed as `target_name` v1."""
    model, report = compute.run(signal, hf_worker.quantize, config, params, precision,
                                calibration, seed)
    signal.check()
    stored = hf_worker.store(model, target_name, 1, signal)
    return {
        "stored": stored,
        "accuracy_loss": report.accuracy_loss,
        "original_param_bytes": report.original_bytes,
        "optimized_param_bytes": report.optimized_bytes,
        "samples": report.samples,
        "optimization_time": time.perf_counter() - started,
    }
