"""Training and optimisation of registered models, as queued tasks pinned to one node.

Training runs where the model is: the node of its best ready copy (a GPU there if it has one,
else `dram`), or the `device` asked for. Weights come from a copy on that node, else from the best
copy elsewhere (Dask carries the bytes worker to worker). With `update_model` (the default) the
trained weights become the model's next version: written on the node's disk, the registry's
`version` + 1, every other copy refreshed, then the model's services reload between batches
(`ModelStore.write_version`). A cancelled or failed training (NaN loss included) writes nothing.

Optimisation quantises a model's weights (int8 per-row, fp16, bf16) into a new registry model
with its own copy, measuring sizes from the stored files and the output error against the original.

Hugging Face models (`hf`, a packed model directory) train and quantise alike (`hf_worker`): rows
may be strings, tokenised by the model's tokenizer; an `embedding` model trained on labels gains a
classification head and its next version is a `classifier`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from distributed import Client

from ...backends import training
from ...backends.base import invalid_input
from ...core.compute_store import RequestMap
from ...core.db import dumps, loads
from ...core.errors import (
    Conflict,
    GswarmError,
    InvalidInputData,
    InvalidRequest,
    NotFound,
    NotImplementedFeature,
    RequestTimeout,
    ResourceUnavailable,
    error_from_dict,
)
from ...core.names import DeviceRef, check_model_name, is_device, parse_device
from ...core.tasks import Task
from ...core.training_api import OptimizeRequest, TrainingRequest, chunk_ids
from ..runtime.cluster import ClusterRuntime
from ..runtime.executor import Job, TaskExecutor
from ..storage.chunkstore import get_chunk
from ..storage.datapool import DataPool
from ..storage.modelstore import ModelCopy, ModelStore
from ..storage.versions import ModelVersions
from ..storage.weight_ops import read_weights
from . import payload
from .ops import EPOCH_TOPIC, quantize_weights, train_weights

TRAIN, OPTIMIZE = "training", "model_optimize"
PRECISIONS = ("int8", "fp16", "bf16")
HF_ARCH = "hf"  # storage.weightfile.HF_ARCH: a packed Hugging Face model directory
TRAINABLE = ("mlp", "gpt", HF_ARCH)
OPTIMIZE_OPTIONS = frozenset({"optimized_model_id", "device", "seed", "samples"})
DEFAULT_SAMPLES = 64

_STATUS = {"pending": "queued"}


class _Model(NamedTuple):
    """A trainable registered model, as its registry row describes it."""

    name: str
    arch: str
    config: dict[str, Any]
    model_type: str


class Trainer:
    def __init__(
        self,
        models: ModelStore,
        versions: ModelVersions,
        executor: TaskExecutor,
        runtime: ClusterRuntime,
        requests: RequestMap,
        data: DataPool,
        clock: Callable[[], float] = time.time,
        encode: Callable[[Any], str] = dumps,
    ) -> None:
        """`encode`: a task payload's JSON as `core.db.dumps` makes it (the server's is faster)."""
        self.models = models
        self._encode = encode
        self.versions = versions
        self.executor = executor
        self.runtime = runtime
        self.requests = requests
        self.data = data
        self.clock = clock
        self.epochs: dict[str, list[float]] = {}  # task id -> loss of each epoch reported so far
        self._subscribed: Client | None = None
        executor.register(TRAIN, self._run_training)
        executor.register(OPTIMIZE, self._run_optimize)

    # -- training -----------------------------------------------------------------------------

    async def submit(self, req: TrainingRequest) -> tuple[str, Task]:
        """Check the request and queue it; answers (request_id, task). Inline rows are checked,
        made the arrays the worker's kernel reads (an mlp's) and encoded for the task's durable
        record on a thread, all in one pass (`payload`): 4,096 x 32 rows took 2 ms on the event
        loop to check and ~8 ms to commit as JSON numbers, then 2-5 ms more to convert in the
        task."""
        model = self._trainable(req)
        data_ids, label_ids = chunk_ids(req.training_data), chunk_ids(req.labels)
        rows: dict[str, Any] = {}
        encoded = None
        if data_ids is None and label_ids is None:
            rows, encoded = await asyncio.to_thread(self._inline_rows, model, req)
        elif data_ids is None and isinstance(req.training_data, str):
            raise InvalidInputData(
                "training_data: expected input rows or data-pool chunk ids, got the string "
                f"{req.training_data!r}", {"field": "training_data"})
        else:
            rows = {k: v for k, v in (("training_data", None if data_ids else req.training_data),
                                      ("labels", None if label_ids else req.labels))
                    if v is not None}
            encoded = await asyncio.to_thread(payload.encode, rows, self._encode) if rows else None
        return self._queue(req, model.name, data_ids, label_ids, rows, encoded)

    def _trainable(self, req: TrainingRequest) -> _Model:
        """The registered model `req` trains (`MODEL_NOT_FOUND`, not ready, not trainable), its
        optimizer and loss checked."""
        LOSSES, OPTIMIZERS = training.losses_and_optimizers()
        name = req.model_id
        row = self.models.registry.row(name)  # MODEL_NOT_FOUND
        if req.optimizer not in OPTIMIZERS:
            raise InvalidRequest(
                f"optimizer: expected one of {list(OPTIMIZERS)}, got {req.optimizer!r}",
                {"field": "optimizer", "allowed": list(OPTIMIZERS)})
        if req.loss_function not in LOSSES:
            raise InvalidRequest(
                f"loss_function: expected one of {list(LOSSES)}, got {req.loss_function!r}",
                {"field": "loss_function", "allowed": list(LOSSES)})
        meta = loads(row["metadata"]) or {}
        arch, config = meta.get("arch"), dict(meta.get("config") or {})
        if arch is None:
            raise ResourceUnavailable(f"model {name} has no ready copy yet", {"model_id": name})
        if arch not in TRAINABLE:
            raise NotImplementedFeature(
                f"model {name} is a {arch} model: only built-in architectures and Hugging Face "
                "models train here", {"model_id": name, "arch": arch})
        return _Model(name, arch, config, row["model_type"])

    def _inline_rows(self, model: _Model, req: TrainingRequest) -> tuple[dict[str, Any], str]:
        """(payload, its JSON) of inline rows, checked now so that a bad request is refused
        before queueing: an mlp's as the arrays its kernel makes of them (the worker reads them
        as they are), others' as they came. Runs on a thread."""
        inputs, labels = req.training_data, req.labels
        try:
            if model.arch == HF_ARCH:
                training.check_hf_rows(model.config.get("model_type") or model.model_type,
                                       model.config.get("num_labels"), inputs, labels,
                                       req.loss_function)
            else:
                inputs, labels = training.checked_arrays(model.arch, model.config, inputs,
                                                         labels, req.loss_function)
        except ValueError as exc:
            raise (_field_error(exc) if model.arch == HF_ARCH else invalid_input(exc)) from None
        rows = {k: v for k, v in (("training_data", inputs), ("labels", labels)) if v is not None}
        return rows, payload.encode(rows, self._encode)

    def _queue(self, req: TrainingRequest, name: str, data_ids: list[str] | None,
               label_ids: list[str] | None, rows: dict[str, Any],
               encoded: str | None) -> tuple[str, Task]:
        self.models.registry.row(name)  # MODEL_NOT_FOUND: deleted while the rows were made
        layouts = {"data": self._layouts(data_ids), "labels": self._layouts(label_ids)}
        target = self._placement(name, req.device)
        self._subscribe()
        spec = {
            "data_layouts": layouts["data"],
            "label_layouts": layouts["labels"],
            "epochs": req.epochs,
            "learning_rate": req.learning_rate,
            "optimizer": req.optimizer,
            "loss_function": req.loss_function,
            "framework": req.framework,
            "device": target.device,
            "seed": req.seed,
            **req.hyperparameters.model_dump(),
        }
        task = self.executor.submit(
            TRAIN,
            name,
            priority=req.priority,
            dependencies=req.dependencies,
            resources={"devices": [str(target)], "models": [name],
                       "chunks": [*(data_ids or []), *(label_ids or [])]},
            params={"model_id": name, "node": target.node, "spec": spec,
                    "update_model": req.update_model,
                    "data_chunks": data_ids, "label_chunks": label_ids},
            payload=rows,
            encoded_payload=encoded,
            locks=[f"model:{name}"],
        )
        request_id = RequestMap.new_id()
        self.requests.add(request_id, task.task_id, name)
        return request_id, task

    async def train(self, req: TrainingRequest) -> dict[str, Any]:
        """`POST /training`: queue, wait (at most `timeout` s, then cancel: 504), answer."""
        request_id, task = await self.submit(req)
        try:
            task = await self.executor.wait(task.task_id, req.timeout)
        except TimeoutError:
            with contextlib.suppress(GswarmError):
                await self.executor.cancel(task.task_id)
            raise RequestTimeout(
                f"training of {req.model_id} did not finish within {req.timeout:g} s; it was "
                "cancelled and the model left unchanged",
                {"timeout": req.timeout, "request_id": request_id, "task_id": task.task_id},
            ) from None
        _raise_unless_completed(task)
        return {"request_id": request_id, **task.result}

    def accepted(self, request_id: str, task: Task) -> dict[str, Any]:
        """`POST /training/async`'s answer: `queued` (API.md), the task's own state beside it."""
        return {"request_id": request_id, "status": "queued",
                "task_status": task.status, "task_id": task.task_id, "priority": task.priority,
                "position": self.executor.queue.position(task.task_id),
                "created_at": task.created_at}

    def status(self, request_id: str) -> dict[str, Any]:
        """`GET /training/{request_id}`: status, progress, epochs done and the loss so far."""
        try:
            task = self.executor.queue.get(self.requests.task_id(request_id))
        except NotFound:
            task = None
        if task is None or task.task_type != TRAIN:
            raise NotFound(f"unknown training request {request_id!r}", {"request_id": request_id})
        result = task.result if isinstance(task.result, dict) else {}
        history = list(result.get("loss_history") or self.epochs.get(task.task_id, []))
        return {
            "request_id": request_id,
            "task_id": task.task_id,
            "model_id": task.params.get("model_id"),
            "status": _STATUS.get(task.status, task.status),
            "progress": task.progress,
            "epochs": task.params.get("spec", {}).get("epochs", 0),
            "epochs_completed": len(history),
            "current_loss": history[-1] if history else None,
            "loss_history": history,
            "final_loss": result.get("final_loss"),
            "training_time": result.get("training_time"),
            "model_updated": result.get("model_updated"),
            "version": result.get("version"),
            "error": task.error,
            "created_at": task.created_at,
            "started_at": task.started_at,
            "completed_at": task.completed_at,
        }

    async def _run_training(self, job: Job) -> dict[str, Any]:
        p = job.params
        name, node = p["model_id"], p["node"]
        # Inline rows are the payload; a task queued before payloads existed has them in its spec.
        rows = payload.decode(job.payload)  # after a restart, read back from its record
        spec = {"training_data": None, "labels": None, **p["spec"], **rows}
        row = self.models.registry.row(name)
        version = row["version"]
        if (p["data_chunks"] is None and p["label_chunks"] is None
                and not payload.holds_arrays(rows)):  # rows of a task queued before they were
            meta = loads(row["metadata"]) or {}
            spec["training_data"], spec["labels"] = await asyncio.to_thread(
                training.inline_arrays, meta.get("arch"), dict(meta.get("config") or {}),
                spec["training_data"], spec["labels"], spec["loss_function"])
        source = self._weights_source(job, name, node, spec["device"])
        data = self._chunk_futures(job, p["data_chunks"], node)
        labels = self._chunk_futures(job, p["label_chunks"], node)
        write = version + 1 if p["update_model"] else None
        future = job.submit(train_weights, name, source, spec, data, labels, job.signal, write,
                            node=node)
        out = await job.wait(future)  # a failed or cancelled write leaves no file behind
        updated = None
        if out["stored"] is not None:
            updated = await self.versions.write_version(job, name, node, write, out["stored"])
        history = out["loss_history"]
        return {
            "model_id": name,
            "final_loss": history[-1] if history else None,
            "loss_history": history,
            "training_time": out["training_time"],
            "epochs_completed": out["epochs_completed"],
            "model_updated": updated is not None,
            "version": updated["version"] if updated else version,
            "steps": out["steps"],
            "node": node,
            "device": spec["device"],
            "framework": spec["framework"],
            "copies_refreshed": updated["refreshed"] if updated else [],
        }

    # -- optimisation -------------------------------------------------------------------------

    async def quantized(self, model_id: str, precision: str) -> str:
        """The name of `model_id` quantised to `precision`, made now unless it already exists
        (the compute plane's `enable_quantization` / `enable_mixed_precision` loads)."""
        name = f"{model_id}-{precision}"
        if not self.models.registry.exists(name):
            await self.optimize(model_id, OptimizeRequest(target_precision=precision))
        return name

    async def optimize(self, model_id: str, req: OptimizeRequest) -> dict[str, Any]:
        """`POST /models/{model_id}/optimize`: quantise into a new registry model."""
        if req.optimization_type != "quantization":
            raise InvalidRequest(
                f"optimization_type: expected 'quantization', got {req.optimization_type!r}",
                {"field": "optimization_type", "allowed": ["quantization"]})
        if req.target_precision not in PRECISIONS:
            raise InvalidRequest(
                f"target_precision: expected one of {list(PRECISIONS)}, "
                f"got {req.target_precision!r}",
                {"field": "target_precision", "allowed": list(PRECISIONS)})
        unknown = sorted(set(req.options) - OPTIMIZE_OPTIONS)
        if unknown:
            raise InvalidRequest(f"options.{unknown[0]}: unknown option; expected "
                                 f"{sorted(OPTIMIZE_OPTIONS)}", {"field": f"options.{unknown[0]}"})
        row = self.models.registry.row(model_id)
        arch = (loads(row["metadata"]) or {}).get("arch")
        if arch not in TRAINABLE:
            raise NotImplementedFeature(
                f"model {model_id} is a {arch} model: only built-in architectures and Hugging "
                "Face models are quantised",
                {"model_id": model_id, "arch": arch})
        target = str(req.options.get("optimized_model_id")
                     or f"{model_id}-{req.target_precision}")
        check_model_name(target, "options.optimized_model_id")
        if self.models.registry.exists(target):
            raise Conflict(f"model {target!r} already exists; name another with "
                           "options.optimized_model_id", {"model_name": target})
        seed, samples = req.options.get("seed", 0), req.options.get("samples", DEFAULT_SAMPLES)
        if not isinstance(seed, int) or seed < 0 or not isinstance(samples, int) or samples < 1:
            raise InvalidRequest("options.seed must be an integer >= 0 and options.samples >= 1",
                                 {"field": "options"})
        ref = self._placement(model_id, req.options.get("device"), memory_only=False)
        task = self.executor.submit(
            OPTIMIZE, model_id,
            resources={"devices": [f"{ref.node}:disk"], "models": [model_id, target]},
            params={"model_id": model_id, "target": target, "node": ref.node,
                    "precision": req.target_precision, "seed": seed, "samples": samples},
            payload=None if req.calibration_data is None else {"calibration": req.calibration_data},
            locks=[f"model:{model_id}", f"model:{target}"],
        )
        task = await self.executor.wait(task.task_id)
        _raise_unless_completed(task)
        return dict(task.result)

    async def _run_optimize(self, job: Job) -> dict[str, Any]:
        p = job.params
        name, target, node = p["model_id"], p["target"], p["node"]
        row = self.models.registry.row(name)
        source = self._weights_source(job, name, node, "dram")
        calibration = job.payload.get("calibration", p.get("calibration"))
        future = job.submit(quantize_weights, name, source, target, p["precision"],
                            calibration, p["seed"], p["samples"], job.signal, node=node)
        out = await job.wait(future)
        stored = out["stored"]
        try:
            self.versions.add_derived(target, name, node, stored, {
                "derived_from": name, "derived_from_version": row["version"],
                "optimization_type": "quantization", "target_precision": p["precision"]})
        except BaseException:
            await self.versions.drop_written(target, node)
            raise
        original = int(row["size"])
        return {
            "model_id": name,
            "optimized_model_id": target,
            "original_size": original,
            "optimized_size": int(stored["size"]),
            "compression_ratio": stored["size"] / original,
            "accuracy_loss": out["accuracy_loss"],
            "optimization_time": out["optimization_time"],
            "target_precision": p["precision"],
            "original_param_bytes": out["original_param_bytes"],
            "optimized_param_bytes": out["optimized_param_bytes"],
            "samples": out["samples"],
            "device": f"{node}:disk",
        }

    # -- inside -------------------------------------------------------------------------------

    def _placement(self, name: str, device: str | None, memory_only: bool = True) -> DeviceRef:
        """Where to run: `device` (node:dram|gpuN|vgpuN), else the node of the best ready copy,
        on its GPU if it has one, else dram."""
        nodes = self.runtime.nodes
        if device is not None:
            ref = parse_device(device, nodes.names(), "device")
            node = nodes.get(ref.node)  # unknown node: NOT_FOUND
            if memory_only and ref.device == "disk":
                raise InvalidRequest("device: training runs on dram, gpuN or vgpuN, not disk",
                                     {"field": "device"})
            if ref.device not in node.devices:
                raise NotFound(f"node {ref.node} has no device {ref.device}",
                               {"field": "device", "device": str(ref)})
        else:
            copies = self.models.ready_copies(name)
            if not copies:
                raise ResourceUnavailable(f"model {name} has no ready copy", {"model_id": name})
            first = copies[0]
            node = nodes.get(first.node)
            here = first.device if first.device != "disk" and is_device(first.device) else None
            ref = DeviceRef(first.node, here or ("gpu0" if "gpu0" in node.devices else "dram"))
        if not node.online:
            raise ResourceUnavailable(f"node {ref.node} is offline", {"node": ref.node})
        return ref

    def _weights_source(self, job: Job, name: str, node: str, device: str) -> Any:
        """This node's copy (the one on `device` first), or another node's copy bytes."""
        copies = self.models.ready_copies(name)
        if not copies:
            raise ResourceUnavailable(f"model {name} has no ready copy", {"model_id": name})
        local: list[ModelCopy] = sorted((c for c in copies if c.node == node),
                                        key=lambda c: c.device != device)
        if local:
            return {"device": local[0].device}
        best = copies[0]
        return job.submit(read_weights, name, best.device, node=best.node)

    def _layouts(self, ids: list[str] | None) -> list[dict[str, Any]] | None:
        if ids is None:
            return None
        layouts = []
        for cid in ids:
            record = self.data.registry.record(cid)  # unknown chunk: NOT_FOUND
            layouts.append({"chunk_id": cid, "format": record["format"],
                            "shape": record["metadata"]["shape"],
                            "dtype": record["metadata"]["dtype"]})
        return layouts

    def _chunk_futures(self, job: Job, ids: list[str] | None, node: str) -> list[Any] | None:
        """Each chunk's bytes, read where a copy is (this node's first)."""
        if ids is None:
            return None
        futures = []
        for cid in ids:
            available = [loc for loc in self.data.copies.of(cid)
                         if loc["status"] == "available"]
            if not available:
                raise Conflict(f"chunk {cid} has no available copy", {"chunk_id": cid})
            loc = min(available, key=lambda r: (r["node"] != node, r["device"] == "disk"))
            futures.append(job.submit(get_chunk, cid, loc["device"], node=loc["node"]))
        return futures

    def _subscribe(self) -> None:
        client = self.runtime.client
        if client is not None and client is not self._subscribed:
            client.subscribe_topic(EPOCH_TOPIC, self._on_epoch)
            self._subscribed = client

    def _on_epoch(self, event: tuple[float, dict[str, Any]]) -> None:
        _, msg = event
        history = self.epochs.setdefault(str(msg.get("task_id")), [])
        epoch = int(msg.get("epoch", 0))
        if epoch == len(history) + 1:
            history.append(float(msg["loss"]))


def _field_error(exc: ValueError) -> GswarmError:
    """A row check's ValueError: INVALID_REQUEST for a request field, else INVALID_INPUT_DATA."""
    field = str(exc).split(":", 1)[0]
    if field == "loss_function":
        return InvalidRequest(str(exc), {"field": field})
    return invalid_input(exc)


def _raise_unless_completed(task: Task) -> None:
    if task.status == "completed":
        return
    if task.error:
        raise error_from_dict(task.error)
    raise Conflict(f"task {task.task_id} was {task.status}; the model is unchanged",
                   {"task_id": task.task_id, "status": task.status})
