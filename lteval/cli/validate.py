"""``python -m lteval.validate``: does separability predict tail accuracy?

Scores a panel of real feature sets per dataset (packaged ImageNet backbones at
their final layer and two intermediate depths, the random-init control, and small
CNNs trained with cross-entropy on the dataset's own long-tailed train split for
1, 3 and 10 epochs), then correlates every score with the accuracy the best head
reaches (chosen on validation): ``lteval.study.run_study`` (``lteval.study.runner``),
with the statistics in ``lteval.study.stats``. Writes ``validate.json`` (with every
feature set's row), ``timings.json`` and ``index.html``.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from lteval.cli import common
from lteval.cli.config import Parser
from lteval.features import RunOptions, resolve_device
from lteval.study.panels import SPLITS
from lteval.study.runner import run_study

log = logging.getLogger(__name__)


def build_parser(prog: str = "lteval validate") -> argparse.ArgumentParser:
    p = Parser(
        prog=prog,
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--datasets",
        default="animal-mnist-lt,fashion-mnist-lt",
        help=f"comma-separated, of {sorted(SPLITS)} (default: %(default)s)",
    )
    p.add_argument(
        "--members",
        help="comma-separated panel members (default: the 16 of lteval.study.panels.study_panel)",
    )
    p.add_argument(
        "--more-panels",
        default="none",
        help="panels scored after the default one, on their own datasets: "
        "'lt-methods' (the small CNN trained by 6 long-tailed methods, 3 seeds each) "
        "or 'none' (default: %(default)s)",
    )
    p.add_argument(
        "--heads",
        default="all",
        help="baseline heads next to DLSA and the probe, for the ground truth: "
        "comma-separated, 'all' or 'none' (default: all)",
    )
    p.add_argument("--input-size", type=int, default=128, help="model input side (default: 128)")
    p.add_argument("--out", default="reports/validate", help="output folder (default: %(default)s)")
    p.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap replicates over feature sets"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    p.add_argument("--device", default="auto", help="torch device (default: auto)")
    p.add_argument("--batch-size", type=int, default=64, help="extraction batch size")
    p.add_argument(
        "--workers", type=int, default=0, help="image-loading worker processes (default: 0)"
    )
    p.add_argument(
        "--lock-timeout",
        type=float,
        default=3600.0,
        help="seconds to wait for another run's lock on a cache entry (negative: for ever)",
    )
    p.add_argument(
        "--no-replicate",
        action="store_true",
        help="skip the second scoring of every feature set under another random_state "
        "(the truth's noise ceiling and each score's test-retest; halves the scoring time)",
    )
    p.add_argument("--config", metavar="FILE", help="YAML of these options; 'dlsa:' sets DLSA")
    p.add_argument(
        "--publish",
        action="store_true",
        help="also write the pooled correlations into lteval's package "
        "(lteval/report/study_summary.json), which every rank report quotes",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def incomplete_dir(out: str | Path) -> Path:
    """Where a study with a panel that ended short goes: beside ``out``, which keeps
    the previous complete study."""
    out = Path(out).expanduser().resolve()  # "." and "a/" have their name
    return out.with_name(out.name + ".incomplete")


def run(args: argparse.Namespace) -> int:
    """``lteval.study.run_study`` with the parsed options, then the study's folder."""
    from lteval.report import study

    common.check_out(args.out)
    incomplete = incomplete_dir(args.out)  # checked now, not after the study
    common.check_out(incomplete, "--out (its .incomplete sibling)")
    result = run_study(
        None if args.members is None else common.split_list(args.members),
        common.split_list(args.datasets),
        more_panels=[]
        if args.more_panels.strip() == "none"
        else common.split_list(args.more_panels),
        heads=common.parse_heads(args.heads),
        input_size=args.input_size,
        runtime=RunOptions(
            device=resolve_device(args.device),
            batch_size=args.batch_size,
            num_workers=args.workers,
            lock_timeout=args.lock_timeout,
        ),
        bootstrap=args.bootstrap,
        seed=args.seed,
        dlsa=args.dlsa,
        progress=not args.quiet,
        replicate=not args.no_replicate,
    )
    result.record["command"] = "python -m lteval.validate " + shlex.join(args.argv)
    if result.incomplete:  # a failed run: the previous study in --out stays as it was
        path = study.write_study(incomplete, result.record, result.timings)
        log.error(
            f"study incomplete ({', '.join(p['name'] for p in result.incomplete)} without "
            f"correlations): the finished panels are in {path}; {args.out} is unchanged"
            + ("; nothing published" if args.publish else "")
        )
        return 1 if any(p["error_kind"] == "bug" for p in result.incomplete) else 2
    path = study.write_study(args.out, result.record, result.timings)
    log.info(f"study: {path}")
    if args.publish:
        study.write_json_atomic(study.SUMMARY, study.summary(result.record))
        log.info(f"published: {study.SUMMARY}")
    return 0


def main(argv: list[str] | None = None, prog: str = "lteval validate") -> int:
    return common.run_main(run, build_parser(prog), argv)


if __name__ == "__main__":
    sys.exit(main())
