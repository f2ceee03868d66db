"""``lteval report RESULTS_DIR``: re-render a report from its results files."""

from __future__ import annotations

import argparse

from lteval.cli.common import run_main
from lteval.cli.config import Parser
from lteval.report import render_report


def build_parser(prog: str = "lteval report") -> argparse.ArgumentParser:
    p = Parser(prog=prog, description=__doc__)
    p.add_argument("results_dir", help="the --out folder of an `lteval rank` run")
    return p


def run(args: argparse.Namespace) -> int:
    path = render_report(args.results_dir)  # RunFolderError for a damaged run folder
    print(path)
    return 0


def main(argv: list[str] | None = None, prog: str = "lteval report") -> int:
    return run_main(run, build_parser(prog), argv)
