"""`%gswarm load`, `infer`, `unload` and `services`: serving models through the compute plane from
the notebook."""

from __future__ import annotations

import argparse
import json
from typing import Any

from IPython.core.error import UsageError

from .commands import OUT, arg, command
from .display import Column, Table


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def _nodes(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name at least one node, e.g. node1,node2")
    return names


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f} ms"


def services_table(statuses: list[dict[str, Any]]) -> Table:
    """One row per service: where it runs, how much it served, and its latency."""
    rows = [
        {"id": s["service_id"], "model": s["model_name"], "node": s["node"], "device": s["device"],
         "framework": s["framework"], "status": s["status"],
         "requests": s.get("requests_served"), "p50": s.get("latency_p50"),
         "p99": s.get("latency_p99")}
        for s in statuses
    ]
    columns = [Column(k, k) for k in ("id", "model", "node", "device", "framework", "status",
                                      "requests")]
    columns += [Column("p50", "p50 latency", _ms), Column("p99", "p99 latency", _ms)]
    return Table(rows, columns, title=f"{len(rows)} services")


@command(
    "load", "Load a model through the compute plane: a batched service that answers inference",
    arg("model", metavar="MODEL"),
    arg("--path", default=None, metavar="URL",
        help="register MODEL from URL first if it is unknown (builtin://, file://, http(s)://)"),
    arg("--device", default=None, metavar="DEVICE", help="where it runs, e.g. dram or node1:dram"),
    arg("--nodes", type=_nodes, default=None, metavar="N1,N2", help="one replica on each node"),
    arg("--framework", choices=("torch", "jax"), default="torch", help="backend (default torch)"),
    arg("--batch", type=_positive_int, default=None, metavar="N",
        help="at most N rows per batch (default 32)"),
    OUT,
)
def load(magics: Any, args: argparse.Namespace, cell: str | None) -> Table:
    fields = {"framework": args.framework, "device": args.device, "nodes": args.nodes,
              "max_batch_size": args.batch}
    loaded = magics.client.compute.load(args.model, args.path,
                                        **{k: v for k, v in fields.items() if v is not None})
    print(f"{loaded['message']} in {loaded['load_time']:.2f} s")
    status = magics.client.services.status(loaded["service_id"])
    magics.keep(args, loaded)
    return services_table([status])


@command(
    "unload", "Unload a model: stop its services and free their memory (the registry keeps it)",
    arg("model", metavar="MODEL"),
    OUT,
)
def unload(magics: Any, args: argparse.Namespace, cell: str | None) -> None:
    record = magics.client.compute.unload(args.model)
    magics.keep(args, record)
    print(f"{args.model} unloaded: stopped {', '.join(record['services'])}")


def input_rows(magics: Any, text: str) -> list[Any]:
    """DATA: a Python expression in the user's namespace, else a JSON literal; rows as lists.
    A flat row (numbers or bytes) is one row."""
    text = text.strip()
    if not text:
        raise UsageError("%gswarm infer: give DATA, a list of rows (a Python expression or JSON)")
    try:
        value = magics.shell.ev(text)
    except Exception as py_error:  # noqa: BLE001 - anything: try JSON next, report both
        try:
            value = json.loads(text)
        except ValueError:
            raise UsageError(
                f"%gswarm infer: DATA {text!r} is neither a Python expression here "
                f"({type(py_error).__name__}: {py_error}) nor JSON") from None
    if hasattr(value, "tolist"):  # numpy arrays, torch tensors
        value = value.tolist()
    if isinstance(value, (bytes, bytearray)):
        value = [list(value)]
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list) or not value:
        raise UsageError(f"%gswarm infer: DATA must be a non-empty list of rows, not "
                         f"{type(value).__name__}")
    rows = [list(r) if isinstance(r, (tuple, bytes, bytearray)) else r for r in value]
    if all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in rows):
        rows = [rows]
    return rows


_INFER_OPTIONS = (
    arg("--max-tokens", type=int, default=None, metavar="N", help="gpt: tokens to generate"),
    arg("--temperature", type=float, default=None, metavar="T", help="gpt: 0 is greedy"),
    arg("--top-p", type=float, default=None, metavar="P", help="gpt: nucleus sampling"),
    arg("--seed", type=int, default=None, metavar="S", help="gpt: the same seed, the same tokens"),
    arg("--session", default=None, metavar="ID", help="a session id from client.compute"),
    arg("--timeout", type=float, default=None, metavar="S", help="give up after S seconds"),
    arg("--decode", action="store_true",
        help="also print each output row as text (byte-level vocab)"),
    OUT,
)


def _split_options(args: argparse.Namespace) -> str:
    """DATA is every word after MODEL up to the first of infer's options (so `-0.5,` in a row is
    data, not an option); the options after it are parsed here into `args`."""
    from .commands import _Parser

    names = {n for names, _ in _INFER_OPTIONS for n in names}
    words = list(args.data)
    cut = next((i for i, w in enumerate(words) if w.split("=", 1)[0] in names), len(words))
    if cut < len(words):
        parser = _Parser(prog="%gswarm infer MODEL DATA", add_help=False)
        for names_, kwargs in _INFER_OPTIONS:
            parser.add_argument(*names_, **{**kwargs, "default": argparse.SUPPRESS})
        parser.parse_args(words[cut:], namespace=args)
    return " ".join(words[:cut])


@command(
    "infer", "Run inference: DATA is a list of rows, or of strings for models with a tokenizer "
    "(Python expression or JSON; quote it if it has quotes, or give it as the cell of "
    "%%gswarm infer MODEL); a language model's generated text is printed",
    *_INFER_OPTIONS,
    arg("model", metavar="MODEL"),
    arg("data", nargs=argparse.REMAINDER, metavar="DATA"),
    cell=True,
)
def infer(magics: Any, args: argparse.Namespace, cell: str | None) -> list[Any]:
    data = _split_options(args)
    if cell is not None and data:
        raise UsageError("%%gswarm infer MODEL: DATA goes in the cell, not on the line")
    rows = input_rows(magics, cell if cell is not None else data)
    result = magics.client.compute.infer(
        args.model, rows, max_tokens=args.max_tokens, temperature=args.temperature,
        top_p=args.top_p, seed=args.seed, session_id=args.session, timeout=args.timeout)
    magics.keep(args, result)
    out = result["output_data"]
    what = f"{result['tokens_generated']} tokens" if result.get("tokens_generated") else \
        f"{len(out)} rows"
    print(f"{what} from {result['service_id']} on {result['node']}, "
          f"inference_time {result['inference_time'] * 1000:.2f} ms")
    if result.get("output_text") is not None:  # a language model's own tokenizer decoded
        for text in result["output_text"]:
            print(repr(text))
    elif args.decode:
        for row in out:
            print(repr(bytes(t % 256 for t in row).decode(errors="replace")))
    return out


@command(
    "services", "Running services: where, how many requests, p50/p99 latency",
    arg("--model", default=None, metavar="MODEL", help="only this model's services"),
    OUT,
)
def services(magics: Any, args: argparse.Namespace, cell: str | None) -> Table:
    found = magics.client.services.list(model_name=args.model)
    statuses = [magics.client.services.status(s["service_id"]) for s in found]
    magics.keep(args, statuses)
    return services_table(statuses)
