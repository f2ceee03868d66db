"""``python -m lteval.compare RUN_A RUN_B``: two rank runs side by side.

Prints, per backbone, both runs' rank and metric (with 95% intervals), the
difference and whether the intervals separate, the Kendall tau between the two
rankings, and the run settings (dataset, split hash, seed, device, versions) that
differ. ``--out DIR`` also writes DIR/compare.html and DIR/compare.csv.
"""

from __future__ import annotations

import argparse
import sys

from lteval.report.compare import compare_runs, format_text, render_comparison


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lteval.compare", description=__doc__)
    p.add_argument("run_a", help="--out folder of the first `python -m lteval.rank` run")
    p.add_argument("run_b", help="--out folder of the second run")
    p.add_argument("--by", help="metric column to compare (default: run A's ranking metric)")
    p.add_argument("--out", help="also write compare.html and compare.csv into this folder")
    args = p.parse_args(argv)
    try:
        cmp = compare_runs(args.run_a, args.run_b, args.by)
    except (FileNotFoundError, KeyError) as e:
        print(f"lteval.compare: error: {str(e).strip(chr(34))}", file=sys.stderr)
        return 2
    print(format_text(cmp, args.run_a, args.run_b))
    if args.out:
        print(render_comparison(cmp, args.run_a, args.run_b, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
