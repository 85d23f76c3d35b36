"""Request and response shapes of the compute plane's training and optimisation routes.

`training_data` and `labels` are inline rows, or data-pool chunk ids (one id, or a list of ids
whose rows are concatenated). `optimizer` and `loss_function` are plain strings here so that an
unknown one is refused by the domain with `INVALID_REQUEST` naming the field and the choices.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .tasks import Priority
from .validation import FLOAT32_MAX, INT64_MAX

Framework = Literal["torch", "jax"]
CHUNK_ID = re.compile(r"chunk-[0-9a-f]{12}")  # matched whole (fullmatch)


def chunk_ids(value: Any) -> list[str] | None:
    """The chunk ids `value` names (a chunk id, or a non-empty list of them), else None."""
    if isinstance(value, str) and CHUNK_ID.fullmatch(value):
        return [value]
    if (isinstance(value, list) and value
            and all(isinstance(v, str) and CHUNK_ID.fullmatch(v) for v in value)):
        return list(value)
    return None


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(32, ge=1, le=1_000_000)
    gradient_clip_norm: float | None = Field(None, gt=0, le=FLOAT32_MAX)
    weight_decay: float = Field(0.0, ge=0, le=FLOAT32_MAX)


class TrainingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: str
    training_data: list[Any] | str = Field(description="input rows, or data-pool chunk id(s)")
    labels: list[Any] | str | None = Field(
        None, description="one per row (class index, probability row or target row), or chunk "
        "id(s); may be omitted for gpt (next-token targets)")
    epochs: int = Field(1, ge=1, le=100_000)
    learning_rate: float = Field(1e-3, gt=0, le=FLOAT32_MAX)
    optimizer: str = "adam"
    loss_function: str = "cross_entropy"
    framework: Framework = "torch"
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    device: str | None = Field(None, description="node:dram|gpuN|vgpuN; default: where the model is")
    update_model: bool = Field(
        True, description="write the trained weights as the model's next version")
    seed: int = Field(0, ge=0, le=INT64_MAX, description="batch order")
    timeout: float | None = Field(None, gt=0, description="seconds the synchronous call waits")
    priority: Priority = "normal"
    dependencies: list[str] = Field(default_factory=list)


class TrainingResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    request_id: str
    final_loss: float | None
    loss_history: list[float]
    training_time: float
    epochs_completed: int
    model_updated: bool
    version: int | None = None
    node: str | None = None
    device: str | None = None
    framework: Framework | None = None
    steps: int | None = None


class TrainingAccepted(BaseModel):
    model_config = ConfigDict(extra="allow")

    request_id: str
    status: Literal["queued", "running", "completed", "failed", "cancelled"]
    task_id: str
    priority: Priority


class TrainingStatus(BaseModel):
    model_config = ConfigDict(extra="allow")

    request_id: str
    task_id: str
    status: Literal["queued", "running", "completed", "failed", "cancelled"]
    progress: int
    epochs: int
    epochs_completed: int
    current_loss: float | None
    loss_history: list[float]
    final_loss: float | None = None
    training_time: float | None = None
    model_updated: bool | None = None
    error: dict[str, Any] | None = None


class OptimizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    optimization_type: str = "quantization"
    target_precision: str = "int8"
    calibration_data: list[Any] | None = Field(
        None, description="input rows the error is measured on (default: a seeded random sample)")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="optimized_model_id (default <model>-<precision>), device (node:device of the "
        "new copy, default the node of the best copy's disk), seed, samples",
    )


class OptimizeResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    model_id: str
    optimized_model_id: str
    original_size: int
    optimized_size: int
    compression_ratio: float
    accuracy_loss: float
    optimization_time: float
    target_precision: str
