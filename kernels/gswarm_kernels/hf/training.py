"""Training data for a Hugging Face model: a classifier's rows (strings or token ids) with class
labels, or a causal model's rows for next-token loss, as right-padded arrays with their mask.

Both loops (`train_torch`, `train_jax`) take the same arrays and the same batch order, and train
without dropout (deterministic steps; the twins check each other).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..training import TrainingData, class_targets, next_token_data
from .inputs import model_rows, pad_batch
from .spec import HFSpec
from .tokenizer import TextTokenizer


def hf_training_data(
    spec: HFSpec, tokenizer: TextTokenizer | None, inputs: Any, labels: Any, loss: str
) -> TrainingData:
    """Classifier: ids, class targets and the attention mask. Causal model: source ids, next-token
    targets and the mask of real positions."""
    if spec.model_type == "embedding":
        raise ValueError(
            "model_type: expected classifier or causal_lm to train (an embedding model trains as "
            "a classifier), got 'embedding'"
        )
    rows = model_rows(spec, tokenizer, inputs, field="training_data")
    if spec.generates:
        if loss != "cross_entropy":
            raise ValueError(
                f"loss_function: a language model trains with cross_entropy, got {loss!r}"
            )
        context = {"vocab": spec.config.vocab, "context": spec.config.positions}
        return next_token_data(context, rows, labels)
    if labels is None:
        raise ValueError("labels: required for a classifier")
    targets, kind = class_targets(labels, len(rows), len(spec.labels), loss)
    ids, mask = pad_batch(rows, pad_id=spec.config.pad_id)
    return TrainingData(ids, targets, kind, mask.astype(np.float32))


def batch_width(mask: np.ndarray) -> int:
    """Columns a batch needs: its longest row (right padding beyond it changes nothing)."""
    return max(1, int(mask.sum(axis=1).max()))
