"""``python -m lteval.report RESULTS_DIR``: re-render a report from its results files."""

from __future__ import annotations

import argparse
import sys

from lteval.report import render_report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lteval.report", description=__doc__)
    p.add_argument("results_dir", help="the --out folder of a `python -m lteval.rank` run")
    args = p.parse_args(argv)
    try:
        path = render_report(args.results_dir)
    except FileNotFoundError as e:
        print(f"lteval.report: error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
