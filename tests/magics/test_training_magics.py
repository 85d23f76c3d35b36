"""`%gswarm train` through IPython's magic machinery, against a real server: the loss curve is
drawn into one display, the summary says what happened, wrong use is a UsageError."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output


MLP = "builtin://mlp?in=8&hidden=16&out=4&seed={seed}"
GPT = "builtin://gpt?vocab=256&d_model=32&layers=1&heads=2&context=32&seed=0"
PNG = b"\x89PNG\r\n\x1a\n"


def _task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(seed).normal(size=(n, 8)).astype(np.float32)
    return x, x[:, :4].argmax(axis=1)


def _png(data: str | bytes) -> bytes:
    """IPython's formatter sends PNG data base64-encoded."""
    return data if isinstance(data, bytes) else base64.b64decode(data)


def _images(cap) -> list:
    return [o for o in cap.outputs if "image/png" in o.data]


def test_train_draws_the_loss_curve_and_reports_the_new_version(ip, client):
    client.models.register("mg-t-mlp", MLP.format(seed=20))
    ip.user_ns["x"], ip.user_ns["y"] = _task(256, seed=0)
    with capture_output() as cap:
        ip.run_line_magic("gswarm", "train mg-t-mlp --data x --labels y --epochs 4 --lr 0.01 "
                                    "--batch 32 -o kept")
    kept = ip.user_ns["kept"]
    assert kept["status"] == "completed" and kept["epochs_completed"] == 4
    history = kept["loss_history"]
    assert kept["final_loss"] == history[-1] < history[0]
    assert kept["model_updated"] is True and kept["version"] == 2
    assert client.models.get("mg-t-mlp")["version"] == 2
    assert kept["framework"] == "torch" and kept["steps"] == 4 * 8

    images = _images(cap)
    assert images, cap.outputs
    assert all(_png(o.data["image/png"])[:8] == PNG for o in images)
    first_id = images[0].transient["display_id"]  # one display, updated in place
    assert all(o.transient["display_id"] == first_id for o in images)
    assert all(o.update for o in images[1:])
    out = cap.stdout.strip()
    assert out.startswith(f"mg-t-mlp: final loss {history[-1]:.4f} (first epoch {history[0]:.4f})"
                          " after 4 epochs with torch on ")
    assert out.endswith("; model updated to version 2")


def test_train_with_jax_on_chunk_ids_without_updating(ip, client):
    client.models.register("mg-t-chunks", MLP.format(seed=21))
    x, y = _task(128, seed=1)
    xs = client.data.put_array("node1:dram", x)["chunk_id"]
    ys = client.data.put_array("node1:dram", y.astype(np.int64))["chunk_id"]
    ip.user_ns["ids"] = xs  # a variable holding a chunk id, and a chunk id typed in
    with capture_output() as cap:
        ip.run_line_magic("gswarm", f"train mg-t-chunks --data ids --labels {ys} --epochs 3 "
                                    "--lr 0.01 --framework jax --no-update -o kept")
    kept = ip.user_ns["kept"]
    assert kept["framework"] == "jax" and kept["model_updated"] is False
    assert kept["final_loss"] < kept["loss_history"][0]
    assert client.models.get("mg-t-chunks")["version"] == 1
    assert cap.stdout.strip().endswith("; model not updated") and _images(cap)


def test_a_gpt_trains_on_bytes_rows_without_labels(ip, client):
    client.models.register("mg-t-gpt", GPT)
    data = b"the cat sat on the mat and the dog sat on the log. " * 8
    ip.user_ns["text"] = [data[i:i + 33] for i in range(0, len(data) - 33, 11)]  # bytes rows
    with capture_output() as cap:
        ip.run_line_magic("gswarm", "train mg-t-gpt --data text --epochs 3 --lr 0.003 -o kept")
    kept = ip.user_ns["kept"]
    assert kept["epochs_completed"] == 3 and kept["final_loss"] < kept["loss_history"][0]
    assert "final loss" in cap.stdout


@pytest.mark.parametrize("line, message", [
    ("train", "the following arguments are required: MODEL, --data"),
    ("train mg-t-x --data x --epochs 0", "argument --epochs: must be at least 1, not 0"),
    ("train mg-t-x --data x --lr -1", "argument --lr: must be greater than 0, not -1"),
    ("train mg-t-x --data x --framework mxnet", "argument --framework: invalid choice"),
    ("train mg-t-x --data nowhere", "--data 'nowhere' is neither a variable here nor a data-pool"),
    ("train mg-t-x --data x --labels 3", "--labels '3' is neither a variable here"),
])
def test_wrong_use_is_a_usage_error(ip, line, message):
    ip.user_ns["x"] = _task(4, seed=2)[0]
    with pytest.raises(UsageError) as err:
        ip.run_line_magic("gswarm", line)
    assert message in str(err.value)
    if "argument" in message or "required" in message:
        assert str(err.value).startswith("usage: %gswarm train")


def test_server_refusals_are_usage_errors_naming_the_field(ip, client):
    client.models.register("mg-t-bad", MLP.format(seed=22))
    ip.user_ns["x"], ip.user_ns["y"] = _task(16, seed=3)
    ip.user_ns["text"] = "not rows"
    with pytest.raises(UsageError, match=r"^INVALID_REQUEST: optimizer: expected one of"):
        ip.run_line_magic("gswarm", "train mg-t-bad --data x --labels y --optimizer lbfgs")
    ip.user_ns["y"] = ip.user_ns["y"][:-1]
    with pytest.raises(UsageError, match=r"^INVALID_INPUT_DATA: labels"):
        ip.run_line_magic("gswarm", "train mg-t-bad --data x --labels y")
    with pytest.raises(UsageError, match=r"--data text must be a non-empty list of rows"):
        ip.run_line_magic("gswarm", "train mg-t-bad --data text")
    assert client.models.get("mg-t-bad")["version"] == 1
