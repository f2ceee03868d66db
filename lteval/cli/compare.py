"""``lteval compare RUN_A RUN_B``: two rank runs side by side.

Prints, per backbone, both runs' rank and metric (with 95% intervals), the
difference and whether the intervals separate, the Kendall tau between the two
rankings, and the run settings (dataset, split hash, seed, device, versions) that
differ. ``--out DIR`` also writes DIR/compare.html and DIR/compare.csv.
"""

from __future__ import annotations

import argparse
import logging

from lteval.cli.common import run_main
from lteval.cli.config import Parser
from lteval.report.compare import (
    check_out_files,
    compare_runs,
    format_text,
    render_comparison,
)

log = logging.getLogger(__name__)


def build_parser(prog: str = "lteval compare") -> argparse.ArgumentParser:
    p = Parser(prog=prog, description=__doc__)
    p.add_argument("run_a", help="--out folder of the first `lteval rank` run")
    p.add_argument("run_b", help="--out folder of the second run")
    p.add_argument("--by", help="metric column to compare (default: run A's ranking metric)")
    p.add_argument("--out", help="also write compare.html and compare.csv into this folder")
    return p


def run(args: argparse.Namespace) -> int:
    if args.out is not None:
        check_out_files(args.out)  # before the work
    cmp = compare_runs(args.run_a, args.run_b, args.by)  # user errors: one line, exit 2
    for w in cmp["warnings"]:
        log.warning(w)
    print(format_text(cmp, args.run_a, args.run_b))
    if args.out:
        print(render_comparison(cmp, args.run_a, args.run_b, args.out))
    return 0


def main(argv: list[str] | None = None, prog: str = "lteval compare") -> int:
    return run_main(run, build_parser(prog), argv)
