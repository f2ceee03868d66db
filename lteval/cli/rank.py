"""``python -m lteval.rank``: extract (cached), score and rank backbones, write a report.

Examples::

    python -m lteval.rank --backbones timm:resnet18,open_clip:ViT-B-32/openai --out reports/run
    python -m lteval.rank --backbones-file backbones.txt --config run.yaml --out reports/run
    python -m lteval.rank --dataset folder --data-root ~/data/mytask --backbones timm:resnet50
    python -m lteval.rank --features feats/ --out reports/mine   # DLSA h5 files per backbone
    torchrun --nproc_per_node=4 -m lteval rank --backbones-file backbones.txt --out reports/run
        # the backbones dealt out to 4 ranks (one GPU each); rank 0 writes the report

A backbone that fails (missing weights, a bad checkpoint, an error while
extracting or scoring) is recorded as failed, with its error, in the results and
the report; the run goes on. The exit status is non-zero only if every backbone
fails (2 when every failure is a user error such as missing weights, 1 otherwise).
"""

from __future__ import annotations

import argparse
import logging
import shlex
from pathlib import Path

import yaml

from lteval import atomic
from lteval.cli import common
from lteval.cli.config import resolved_config
from lteval.cli.torchrun import init_process_group
from lteval.errors import UsageError
from lteval.rank import HEADS, METRICS, pipeline
from lteval.report import render_report

log = logging.getLogger(__name__)


def build_parser(prog: str = "lteval rank") -> argparse.ArgumentParser:
    p = common.new_parser(prog, __doc__)
    g = p.add_argument_group("ranking")
    g.add_argument(
        "--features",
        metavar="DIR",
        help="rank precomputed features instead of extracting: one sub-folder per "
        "backbone with feature_train.h5 and feature_test.h5 (datasets 'features' "
        "N x D float and 'labels' N int or class names, the DLSA reference format)",
    )
    g.add_argument(
        "--by",
        default="separability",
        help="results column to rank by (default: %(default)s); any of: " + ", ".join(METRICS),
    )
    g.add_argument(
        "--heads",
        default=",".join(HEADS),
        help="baseline heads scored next to DLSA and the Balanced-Softmax probe, "
        "comma-separated, 'all' or 'none' (default: %(default)s)",
    )
    g.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        help="bootstrap replicates for the 95%% intervals, ties and rank correlations "
        "(0 = none; default: %(default)s)",
    )
    g.add_argument("--out", default="reports/run", help="output folder (default: %(default)s)")
    return p


def run(args: argparse.Namespace) -> int:
    """``lteval.rank.run`` with the parsed options, then the results and the report."""
    out = Path(args.out).expanduser()
    init_process_group(args.device)  # under torchrun: the ranks share the backbones
    # every rank checks --out (rank 0 alone writes it): a refused --out ends them all
    # at once, where a check on rank 0 alone would leave the others waiting for it
    common.check_out(args.out, inputs=_inputs(args))
    runtime = common.run_options(args)
    if bool(args.features) == bool(args.backbones or args.backbones_file):
        raise UsageError("give exactly one of --backbones (or --backbones-file) and --features")
    settings = dict(
        by=args.by,
        heads=common.parse_heads(args.heads),
        bootstrap=args.bootstrap,
        seed=args.seed,
        dlsa=args.dlsa,
        progress=not args.quiet,
    )
    if args.features:
        if args.weights:  # the other extraction options have defaults: not told apart
            raise UsageError(
                "--weights is for backbones extracted here; with --features the features "
                "are already extracted: drop --weights"
            )
        result = pipeline.run_features(
            args.features, val_fraction=args.val_fraction, device=str(runtime.device), **settings
        )
    else:
        result = pipeline.run(
            common.backbone_list(args.backbones, args.backbones_file),
            dataset=args.dataset,
            data_root=args.data_root,
            imbalance_factor=args.imbalance_factor,
            eval_per_class=args.eval_per_class,
            val_fraction=args.val_fraction,
            weights=common.parse_weights(args.weights),
            allow_random_init=args.allow_random_init,
            input_size=args.input_size,
            features=common.feature_options(args),
            runtime=runtime,
            **settings,
        )
    result.run["command"] = "lteval rank " + shlex.join(args.argv)  # provenance: the CLI's
    if result.worker:  # its scores went to rank 0
        return 0
    if not result.ok:
        for s in result.scores:  # other failures were logged in full as they happened
            if s.row["phase"] == "weights":
                log.error(f"{s.row['backbone']}: {s.row['error']}")
        log.error("every backbone failed: no results written")
        return 1 if any(s.row["error_kind"] == "bug" for s in result.scores) else 2
    # a reader sees the old report or the new one; a user's files in it stop the swap
    with atomic.folder(out) as tmp:
        result.write(tmp)
        config = resolved_config(args)
        (tmp / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=True))
        render_report(tmp)
    log.info(f"report: {out / 'index.html'}")
    failures = len(result.scores) - len(result.ok)
    if failures:
        log.error(f"{failures} of {len(result.scores)} backbones failed (see the report)")
    return 0


def _inputs(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """The folders a run reads, which its --out must not be inside."""
    return [("--data-root", args.data_root), ("--features", args.features)]


def main(argv: list[str] | None = None, prog: str = "lteval rank") -> int:
    return common.run_main(run, build_parser(prog), argv)
