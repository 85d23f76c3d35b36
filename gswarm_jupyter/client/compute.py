"""`client.services` and `client.compute`: services and the compute plane."""

from __future__ import annotations

from typing import Any

from .parts import COMPUTE, CONTROL, MAX_PAGE, _Part, _clean, _seg


class ServicesApi(_Part):
    """Services: a model loaded on a device of a node, batched, answering through the compute
    plane. `status` adds request counters, queue depth, p50/p99 latency (s) and batch sizes."""

    def list(self, model_name: str | None = None, status: str | None = None) -> Any:
        params = _clean(model_name=model_name, status=status, per_page=MAX_PAGE)
        return self._call("GET", CONTROL + "services", params=params, key="services")

    def start(self, model_name: str, nodes: list[str] | None = None, device: str | None = None,
              config: dict[str, Any] | None = None) -> Any:
        """Start a service (`config`: replicas, load_balancing, max_batch_size, batch_timeout_ms,
        timeout, framework); answers its record once it can answer inference."""
        body = _clean(model_name=model_name, nodes=nodes, device=device, config=config)
        return self._call("POST", CONTROL + "services", json=body)

    def get(self, service_id: str) -> Any:
        return self._call("GET", CONTROL + f"services/{_seg(service_id)}")

    def status(self, service_id: str) -> Any:
        return self._call("GET", CONTROL + f"services/{_seg(service_id)}/status")

    def stop(self, service_id: str) -> Any:
        """Drain, stop and free its device memory."""
        return self._call("DELETE", CONTROL + f"services/{_seg(service_id)}")


_OPTIONS = ("temperature", "top_p", "max_tokens", "seed")


def _inference_body(model_id: str, input_data: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """An inference request: generation options (`temperature`, `top_p`, `max_tokens`, `seed`) go
    under `options`, the other fields (`session_id`, `timeout`, `service_id`, ...) at the top."""
    options = _clean(**{k: fields.pop(k, None) for k in _OPTIONS})
    options.update(fields.pop("options", None) or {})
    return {"model_id": model_id, "input_data": input_data, **_clean(**fields),
            **({"options": options} if options else {})}


class ComputeApi(_Part):
    """The compute plane: load models, run inference (sync, async, batch), sessions, metrics."""

    def health(self) -> Any:
        return self._call("GET", COMPUTE + "health")

    def load(self, model_id: str, model_path: str | None = None, **fields: Any) -> Any:
        """Register `model_path` if given (builtin://, file://, http(s)://, pkg:// or a path) and
        start a service. `fields`: framework, device, nodes, replicas, max_batch_size, batch_timeout_ms,
        timeout, ... as in API.md."""
        body = _clean(model_id=model_id, model_path=model_path, **fields)
        return self._call("POST", COMPUTE + "models", json=body)

    def loaded(self) -> Any:
        return self._call("GET", COMPUTE + "models", key="models")

    def unload(self, model_id: str) -> Any:
        return self._call("DELETE", COMPUTE + f"models/{_seg(model_id)}")

    def infer(self, model_id: str, input_data: Any, **options: Any) -> Any:
        """Rows in, rows out: float rows, token-id rows, or strings for models with a tokenizer
        (an embedding answers a vector per string; a causal_lm the generated ids in
        `output_data` and their text in `output_text`). An output JSON cannot name (NaN, an
        infinity) comes back as None: `numpy.array(rows, dtype=float)` makes it NaN again."""
        return self._call("POST", COMPUTE + "inference",
                          json=_inference_body(model_id, input_data, options))

    def infer_async(self, model_id: str, input_data: Any, **options: Any) -> Any:
        """Queue it (a task; `priority` allowed); answers `{request_id, status: queued, ...}`."""
        return self._call("POST", COMPUTE + "inference/async",
                          json=_inference_body(model_id, input_data, options))

    def inference(self, request_id: str) -> Any:
        """An async inference's status, and its output once completed."""
        return self._call("GET", COMPUTE + f"inference/{_seg(request_id)}")

    def infer_batch(self, requests: list[dict[str, Any]]) -> Any:
        """Several request bodies at once; each succeeds or fails on its own. `results[i]` answers
        `requests[i]`: the fields of `infer`'s answer with `error: None`, or only `error`."""
        return self._call("POST", COMPUTE + "inference/batch", json={"requests": requests})

    def session_start(self, user_id: str, model_id: str, ttl_seconds: float | None = None) -> Any:
        body = _clean(user_id=user_id, model_id=model_id, ttl_seconds=ttl_seconds)
        return self._call("POST", COMPUTE + "sessions", json=body)

    def session_end(self, session_id: str) -> Any:
        return self._call("DELETE", COMPUTE + f"sessions/{_seg(session_id)}")

    def metrics(self) -> Any:
        """Throughput, latency and request counters over the sliding window, device memory."""
        return self._call("GET", COMPUTE + "metrics", key="metrics")

    def metrics_history(self, start_time: float | str | None = None,
                        end_time: float | str | None = None, interval: float | None = None) -> Any:
        params = _clean(start_time=start_time, end_time=end_time, interval=interval)
        return self._call("GET", COMPUTE + "metrics/history", params=params or None)

    # -- training and optimisation
    def train(self, model_id: str, training_data: Any, labels: Any = None, epochs: int = 1,
              learning_rate: float = 1e-3, optimizer: str = "adam",
              loss_function: str = "cross_entropy", framework: str | None = None,
              hyperparameters: dict[str, Any] | None = None, **fields: Any) -> Any:
        """Train on the model's node and wait: `{request_id, final_loss, loss_history,
        training_time, epochs_completed, model_updated, version, ...}`. Rows may be lists or
        numpy arrays, strings for Hugging Face models (an `embedding` model trained on labels
        becomes a `classifier`), or data-pool chunk id(s). `batch_size`, `gradient_clip_norm` and
        `weight_decay` may be given here or in `hyperparameters`; other `fields` (`device`,
        `update_model`, `seed`, `timeout`, ...) go at the top of the body. It waits as long as the
        training takes (or the body's `timeout`, then 504), not the client's timeout."""
        return self._call("POST", COMPUTE + "training", waits=True, json=_training_body(
            model_id, training_data, labels, epochs, learning_rate, optimizer, loss_function,
            framework, hyperparameters, fields))

    def train_async(self, model_id: str, training_data: Any, labels: Any = None, epochs: int = 1,
                    learning_rate: float = 1e-3, optimizer: str = "adam",
                    loss_function: str = "cross_entropy", framework: str | None = None,
                    hyperparameters: dict[str, Any] | None = None, **fields: Any) -> Any:
        """Queue a training (a task; `priority` allowed): `{request_id, status: queued, task_id,
        ...}`. Follow it with `training(request_id)` or `client.tasks.wait(task_id)`."""
        return self._call("POST", COMPUTE + "training/async", json=_training_body(
            model_id, training_data, labels, epochs, learning_rate, optimizer, loss_function,
            framework, hyperparameters, fields))

    def training(self, request_id: str) -> Any:
        """A training's status, progress, epochs done, `current_loss` and `loss_history` so far,
        and its result once completed."""
        return self._call("GET", COMPUTE + f"training/{_seg(request_id)}")

    def optimize(self, model_id: str, target_precision: str = "int8",
                 calibration_data: Any = None, options: dict[str, Any] | None = None) -> Any:
        """Quantise (`int8`, `fp16`, `bf16`) into a new registry model: `{optimized_model_id,
        original_size, optimized_size, compression_ratio, accuracy_loss, optimization_time}`.
        `options`: optimized_model_id, device, seed, samples. It waits as long as that takes."""
        body = _clean(optimization_type="quantization", target_precision=target_precision,
                      calibration_data=_as_rows(calibration_data), options=options)
        return self._call("POST", COMPUTE + f"models/{_seg(model_id)}/optimize", json=body,
                          waits=True)

    # -- resource allocations
    def reserve(self, memory_size: int, duration: float, compute_units: float = 1.0,
                device: str | None = None, user_id: str = "notebook") -> Any:
        """Reserve `memory_size` bytes (and `compute_units`) on `device` (None: the least loaded
        GPU, else a vGPU, else dram) for `duration` s: `{allocation_id, gpu_id, node, ...}`.
        Until it ends, only its owner's copies and chunks go into those bytes."""
        body = _clean(user_id=user_id, memory_size=memory_size, compute_units=compute_units,
                      duration=duration, device=device)
        return self._call("POST", COMPUTE + "resources", json=body)

    def allocations(self, owner: str | None = None) -> Any:
        """Live allocations (a key sees its own; the admin every one, or `owner`'s)."""
        params = _clean(owner=owner, per_page=MAX_PAGE)
        return self._call("GET", COMPUTE + "resources", params=params, key="allocations")

    def allocation(self, allocation_id: str) -> Any:
        return self._call("GET", COMPUTE + f"resources/{_seg(allocation_id)}")

    def free(self, allocation_id: str) -> Any:
        """Free an allocation before it ends."""
        return self._call("DELETE", COMPUTE + f"resources/{_seg(allocation_id)}")

    # -- virtual GPUs
    def vgpus(self, node: str | None = None) -> Any:
        """Virtual GPUs, each with `memory_size`, `memory_used`, `compute_units`, `backing`."""
        params = _clean(node=node, per_page=MAX_PAGE)
        return self._call("GET", COMPUTE + "virtualization/gpus", params=params, key="vgpus")

    def vgpu(self, virtual_gpu_id: str) -> Any:
        return self._call("GET", COMPUTE + f"virtualization/gpus/{_seg(virtual_gpu_id)}")

    def vgpu_create(self, virtual_gpu_id: str, memory_size: int, compute_units: int = 1,
                    scheduling_policy: str = "weighted", node: str | None = None,
                    physical_device: str | None = None) -> Any:
        """Carve a virtual GPU (admin): a `vgpuN` device of `node` with a hard memory quota and a
        share of its physical device's batches by `compute_units`; answers its record (`node`,
        `device`, `physical_gpu_id`, `backing`: cuda, or cpu where the node has no GPU)."""
        body = _clean(virtual_gpu_id=virtual_gpu_id, memory_size=memory_size,
                      compute_units=compute_units, scheduling_policy=scheduling_policy,
                      node=node, physical_device=physical_device)
        return self._call("POST", COMPUTE + "virtualization/gpus", json=body)

    def vgpu_delete(self, virtual_gpu_id: str, force: bool = False) -> Any:
        """Destroy a virtual GPU (admin); `Conflict` while anything sits on it unless `force`."""
        params = {"force": "true"} if force else None
        return self._call("DELETE", COMPUTE + f"virtualization/gpus/{_seg(virtual_gpu_id)}",
                          params=params)



_HYPERPARAMETERS = ("batch_size", "gradient_clip_norm", "weight_decay")


def _as_rows(value: Any) -> Any:
    """numpy arrays (and anything with `tolist`) as JSON lists; chunk ids and lists as given."""
    return value.tolist() if hasattr(value, "tolist") else value


def _training_body(model_id: str, training_data: Any, labels: Any, epochs: int,
                   learning_rate: float, optimizer: str, loss_function: str,
                   framework: str | None, hyperparameters: dict[str, Any] | None,
                   fields: dict[str, Any]) -> dict[str, Any]:
    hyper = _clean(**{k: fields.pop(k, None) for k in _HYPERPARAMETERS})
    hyper.update(hyperparameters or {})
    return _clean(model_id=model_id, training_data=_as_rows(training_data),
                  labels=_as_rows(labels), epochs=epochs, learning_rate=learning_rate,
                  optimizer=optimizer, loss_function=loss_function, framework=framework,
                  hyperparameters=hyper or None, **fields)
