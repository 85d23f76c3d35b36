"""`%gswarm models`, `register`, `move`, `copy`: the model registry as tables, and its tasks with
progress bars."""

from __future__ import annotations

import argparse
from typing import Any

from ..core.units import format_bytes
from .commands import OUT, arg, command
from .display import Column, Table
from .progress import wait_with_bar
from .tasks import outcome

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def byte_rate(text: str) -> int:
    """`50MB`, `1.5GiB`, `200000`: bytes per second, positive."""
    number = text.strip().lower().removesuffix("/s")
    unit = number.lstrip("0123456789.")
    digits = number[: len(number) - len(unit)]
    try:
        value = float(digits) * _UNITS[unit.strip()]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"not a byte rate: {text!r} (e.g. 50MB, 1GiB)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return int(value)


def locations_cell(locations: list[dict[str, Any]]) -> str:
    """`node1:disk, node2:dram (copying)`: a copy's status is shown unless it is ready."""
    return ", ".join(
        loc["device"] if loc["status"] == "ready" else f"{loc['device']} ({loc['status']})"
        for loc in locations
    )


def models_table(models: list[dict[str, Any]]) -> Table:
    """One row per model: name, type, size, status, version, locations."""
    rows = [
        {"name": m["model_name"], "type": m["model_type"], "size": format_bytes(m["model_size"]),
         "status": m["status"], "version": m["version"], "locations": locations_cell(m["locations"])}
        for m in models
    ]
    columns = [Column(k, k) for k in ("name", "type", "size", "status", "version", "locations")]
    return Table(rows, columns, title=f"{len(rows)} models")


@command(
    "models", "The model registry: each model with its copies",
    arg("--type", default=None, help="only models of this type (e.g. mlp, gpt)"),
    arg("--location", default=None, metavar="DEVICE",
        help="only models with a copy on DEVICE (e.g. dram, node1:dram)"),
    arg("--status", default=None, help="only models in this status (e.g. ready)"),
    OUT,
)
def models(magics: Any, args: argparse.Namespace, cell: str | None) -> Table:
    found = magics.client.models.list(type=args.type, location=args.location, status=args.status)
    magics.keep(args, found)
    return models_table(found)


def _finish(magics: Any, args: argparse.Namespace, task: dict[str, Any], name: str) -> Table:
    """Wait for the task with a bar, print how it ended, show the model's row."""
    if task["status"] not in ("completed", "failed", "cancelled"):
        task = wait_with_bar(magics.client, task["task_id"], timeout=args.timeout,
                             desc=f"{name} {task['task_type'].removeprefix('model_')}")
    print(outcome(task))
    record = magics.client.models.get(name)
    magics.keep(args, record)
    return models_table([record])


TIMEOUT = arg("--timeout", type=float, default=None, metavar="S",
              help="stop waiting after S seconds (the task goes on)")


@command(
    "register", "Register a model from builtin://, file://, http(s):// or pkg:// (a Hugging Face "
    "model directory: a folder, an archive, or one an installed package ships)",
    arg("name", metavar="NAME"),
    arg("url", metavar="URL"),
    arg("--to", default=None, metavar="DEVICE", help="where the first copy goes (e.g. node1:disk)"),
    arg("--type", default=None, help="the model type (checked against the source's architecture; "
        "embedding, causal_lm or classifier for a Hugging Face model)"),
    arg("--checksum", default=None, metavar="SHA256", help="what a download must hash to"),
    TIMEOUT,
    OUT,
)
def register(magics: Any, args: argparse.Namespace, cell: str | None) -> Table:
    record = magics.client.models.register(args.name, args.url, model_type=args.type,
                                           download_to=args.to, checksum=args.checksum)
    if record.get("task_id") and record["status"] == "downloading":
        return _finish(magics, args, magics.client.tasks.get(record["task_id"]), args.name)
    magics.keep(args, record)
    return models_table([record])


_PLACE = (arg("name", metavar="NAME"), arg("source", metavar="SRC", help="e.g. node1:disk"),
          arg("target", metavar="DST", help="e.g. node2:dram"))


@command(
    "move", "Move a model's copy to another device or node (a task; a progress bar until it ends)",
    *_PLACE,
    arg("--keep-source", action="store_true", help="keep the source copy (as copy does)"),
    TIMEOUT,
    OUT,
)
def move(magics: Any, args: argparse.Namespace, cell: str | None) -> Table:
    task = magics.client.models.move(args.name, args.source, args.target,
                                     keep_source=args.keep_source)
    return _finish(magics, args, task, args.name)


@command(
    "copy", "Copy a model to another device or node (a task; a progress bar until it ends)",
    *_PLACE,
    arg("--bandwidth", type=byte_rate, default=None, metavar="B",
        help="at most B bytes/s (e.g. 50MB, 1GiB)"),
    TIMEOUT,
    OUT,
)
def copy(magics: Any, args: argparse.Namespace, cell: str | None) -> Table:
    task = magics.client.models.copy(args.name, args.source, args.target,
                                     bandwidth_limit=args.bandwidth)
    return _finish(magics, args, task, args.name)
