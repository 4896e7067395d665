"""Command line: ``python -m pretrain COMMAND ...`` (``--help`` lists the commands)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Idle OpenMP threads otherwise spin and slow torch several-fold on a busy 2-core machine.
# Must be set before torch is imported (by any command module below).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pretrain.errors import ExplorerError

# Each command lives in pretrain/commands/<module>.py with ``add_arguments(parser)`` and
# ``run(args) -> int``; its docstring's first line is the help text.
COMMANDS = {
    "bundle": "bundle",
    "lookup": "lookup",
    "download-mirabest": "download_mirabest",
    "train": "train",
    "embed": "embed",
    "evaluate": "evaluate",
    "finetune": "finetune",
    "space": "space",
    "neighbours": "neighbours",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pretrain", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(f"pretrain.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"pretrain.commands.{module_name}":
                continue  # command not built yet
            raise
        doc = (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else ""
        command_parser = sub.add_parser(
            name, help=doc, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        module.add_arguments(command_parser)
        modules[name] = module
    args = parser.parse_args(argv)
    try:
        return int(modules[args.command].run(args) or 0)
    except ExplorerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted.", file=sys.stderr)
        return 130


def cli() -> None:
    """The ``radio-explorer`` console command (``pip install -e .``): the same as ``python -m pretrain``."""
    sys.exit(main())


if __name__ == "__main__":
    cli()
