"""The `%gswarm` subcommands: a registry each feature adds to, and the parser built from it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError

Arg = tuple[tuple[str, ...], dict[str, Any]]
Runner = Callable[[Any, argparse.Namespace, "str | None"], Any]


def arg(*names: str, **kwargs: Any) -> Arg:
    return (names, kwargs)


# Shared argument bundles, as ipyparallel's magics share theirs.
OUT = arg("-o", "--out", metavar="NAME", help="also keep the data in the variable NAME")


@dataclass
class Command:
    name: str
    help: str
    run: Runner
    args: list[Arg] = field(default_factory=list)
    cell: bool = False  # usable as %%gswarm NAME


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, *args: Arg, cell: bool = False) -> Callable[[Runner], Runner]:
    def register(run: Runner) -> Runner:
        COMMANDS[name] = Command(name, help, run, list(args), cell)
        return run

    return register


class _HelpShown(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that raises `UsageError` (with the usage line) instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.format_usage().strip()}\n{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if message:
            print(message)
        raise _HelpShown


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="%gswarm", description="Drive the gswarm cluster from the notebook.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for cmd in sorted(COMMANDS.values(), key=lambda c: c.name):
        # argparse %-formats help strings: `%%gswarm` would print as `%gswarm`
        help_text = cmd.help.replace("%", "%%")
        sub = subparsers.add_parser(cmd.name, help=help_text, description=cmd.help)
        for names, kwargs in cmd.args:
            sub.add_argument(*names, **kwargs)
    return parser


def parse(line: str) -> argparse.Namespace | None:
    """The parsed line, or None when it only asked for help (which is printed)."""
    import shlex

    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%gswarm: {exc}") from None
    parser = build_parser()
    if not words:
        parser.print_help()
        return None
    try:
        return parser.parse_args(words)
    except _HelpShown:
        return None
