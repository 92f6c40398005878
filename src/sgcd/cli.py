"""The `sgcd` command line: train | eval | sft | compare | report | reference | env | bench.

Each subcommand lives in `sgcd.commands.<name>` and exposes `register(subparsers)`, which adds its parser and
sets `func` (called with the parsed args, returning an exit code). Registration must stay import-light (no
torch, no transformers) so `sgcd --help` is instant; the work imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from sgcd import __version__

COMMANDS = ["train", "eval", "sft", "compare", "report", "reference", "env", "bench"]


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgcd",
        description="Sibling-Guided Credit Distillation: GRPO in charge, credit redistributed inside trajectories.",
    )
    parser.add_argument("--version", action="version", version=f"sgcd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module_name = f"sgcd.commands.{name}"
        if importlib.util.find_spec(module_name) is None:
            continue
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"sgcd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sgcd {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # `python -m sgcd.cli`: run the imported module's main, whose CliError is the one the commands raise (this
    # file's own copy, as __main__, is a different class and would let every one-line error out as a traceback)
    sys.exit(importlib.import_module("sgcd.cli").main())
