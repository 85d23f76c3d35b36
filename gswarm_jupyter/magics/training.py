"""`%gswarm train`: train a registered model on its node and watch the loss curve grow.

The training runs as a queued task (`POST /training/async`); the magic polls
`GET /training/{request_id}` and redraws a matplotlib figure of the loss per epoch in one display
(a PNG, so it needs no matplotlib backend in the kernel). Interrupting the cell cancels the task:
the training stops after its current step and the model is left unchanged.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from IPython.core.error import UsageError

from ..core.errors import error_from_dict
from ..core.training_api import CHUNK_ID
from .commands import OUT, arg, command
from .serving import _positive_int

POLL = 0.25  # seconds between two looks at the training
FINISHED = ("completed", "failed", "cancelled")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
    return value


def training_rows(magics: Any, name: str, option: str) -> Any:
    """The variable `name` of the user's namespace as JSON rows (lists, tuples, numpy arrays,
    bytes rows), or data-pool chunk ids (`chunk-...`, or several separated by commas)."""
    ns = magics.shell.user_ns
    if name not in ns:
        ids = [part.strip() for part in name.split(",")]
        if all(CHUNK_ID.fullmatch(i) for i in ids):
            return ids
        raise UsageError(f"%gswarm train: {option} {name!r} is neither a variable here nor a "
                         "data-pool chunk id (chunk-...)")
    value = ns[name]
    if isinstance(value, str):
        ids = [part.strip() for part in value.split(",")]
        if all(CHUNK_ID.fullmatch(i) for i in ids):
            return ids
    if hasattr(value, "tolist"):  # numpy arrays, torch tensors
        value = value.tolist()
    if isinstance(value, (bytes, bytearray)):
        value = [list(value)]
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list) or not value:
        raise UsageError(f"%gswarm train: {option} {name} must be a non-empty list of rows (or "
                         f"an array), not {type(value).__name__}")
    if all(isinstance(v, str) and CHUNK_ID.fullmatch(v) for v in value):
        return value
    return [list(r) if isinstance(r, (tuple, bytes, bytearray)) else r for r in value]


def loss_png(model: str, history: list[float], epochs: int, status: str) -> bytes:
    """The loss curve so far (one point per epoch, the x axis already spanning every epoch)."""
    import io

    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(5.5, 3.2), dpi=80)
    ax = fig.add_subplot()
    xs = list(range(1, len(history) + 1))
    ax.plot(xs, history, "o-", color="tab:blue")
    ax.set_xlim(0.5, max(epochs, 1) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    done = f"epoch {len(history)}/{epochs}"
    loss = f", loss {history[-1]:.4f}" if history else ""
    ax.set_title(f"{model}: {done}{loss} ({status})", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


class LossCurve:
    """One display of the loss curve, redrawn when an epoch ends or the status changes."""

    def __init__(self, model: str, epochs: int) -> None:
        self.model, self.epochs = model, epochs
        self.handle: Any = None
        self.drawn: tuple[int, str] | None = None
        self.frames = 0

    def show(self, status: dict[str, Any]) -> None:
        from IPython.display import Image, display

        history = list(status.get("loss_history") or [])
        key = (len(history), status["status"])
        if key == self.drawn:
            return
        image = Image(data=loss_png(self.model, history, self.epochs, status["status"]),
                      format="png")
        if self.handle is None:
            self.handle = display(image, display_id=True)
        else:
            self.handle.update(image)
        self.drawn = key
        self.frames += 1


@command(
    "train", "Train a model on its node (an async training task), drawing the loss curve as it "
    "trains. DATA and LABELS name variables here (lists or arrays) or data-pool chunk ids",
    arg("model", metavar="MODEL"),
    arg("--data", required=True, metavar="NAME",
        help="input rows: a variable (list or array; strings for Hugging Face models), or "
             "chunk id(s) chunk-...,chunk-..."),
    arg("--labels", default=None, metavar="NAME",
        help="one label per row: class index, probability row or target row (gpt and "
             "causal_lm: may be omitted, next-token targets)"),
    arg("--epochs", type=_positive_int, default=5, metavar="N", help="epochs (default 5)"),
    arg("--lr", type=_positive_float, default=1e-3, metavar="X",
        help="learning rate (default 0.001)"),
    arg("--optimizer", default="adam", metavar="NAME", help="adam (default), adamw or sgd"),
    arg("--loss", default="cross_entropy", metavar="NAME",
        help="cross_entropy (default) or mse"),
    arg("--framework", choices=("torch", "jax"), default="torch", help="default torch"),
    arg("--batch", type=_positive_int, default=None, metavar="N",
        help="minibatch size (default 32)"),
    arg("--device", default=None, metavar="DEVICE",
        help="where it trains, e.g. node2:dram (default: where the model is)"),
    arg("--seed", type=int, default=None, metavar="S", help="batch order"),
    arg("--no-update", action="store_true",
        help="train without writing a new version of the model"),
    OUT,
)
def train(magics: Any, args: argparse.Namespace, cell: str | None) -> None:
    data = training_rows(magics, args.data, "--data")
    labels = None if args.labels is None else training_rows(magics, args.labels, "--labels")
    fields = {"device": args.device, "seed": args.seed, "batch_size": args.batch}
    client = magics.client
    accepted = client.compute.train_async(
        args.model, data, labels, epochs=args.epochs, learning_rate=args.lr,
        optimizer=args.optimizer, loss_function=args.loss, framework=args.framework,
        **({"update_model": False} if args.no_update else {}),
        **{k: v for k, v in fields.items() if v is not None})
    request_id = accepted["request_id"]
    curve = LossCurve(args.model, args.epochs)
    try:
        while (status := client.compute.training(request_id))["status"] not in FINISHED:
            curve.show(status)
            time.sleep(POLL)
    except KeyboardInterrupt:
        client.tasks.cancel(accepted["task_id"])
        print(f"{args.model}: training {request_id} cancelled; the model is unchanged")
        return None
    curve.show(status)
    result = client.tasks.get(accepted["task_id"]).get("result") or {}
    record = {**{k: result[k] for k in ("node", "device", "framework", "steps") if k in result},
              **status}
    magics.keep(args, record)
    if status["status"] == "failed":
        raise error_from_dict(status.get("error") or {})
    if status["status"] == "cancelled":
        print(f"{args.model}: training {request_id} was cancelled; the model is unchanged")
        return None
    history = status["loss_history"]
    where = f" on {record['node']}:{record['device']}" if "node" in record else ""
    updated = (f"model updated to version {status['version']}" if status["model_updated"]
               else "model not updated")
    print(f"{args.model}: final loss {status['final_loss']:.4f} (first epoch {history[0]:.4f}) "
          f"after {status['epochs_completed']} epochs with {args.framework}{where} in "
          f"{status['training_time']:.2f} s; {updated}")
    return None
