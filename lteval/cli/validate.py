"""``python -m lteval.validate``: does separability predict tail accuracy?

Scores a panel of real feature sets per dataset (packaged ImageNet backbones at
their final layer and two intermediate depths, the random-init control, and small
CNNs trained with cross-entropy on the dataset's own long-tailed train split for
1, 3 and 10 epochs), then correlates every score with the accuracy the best head
reaches (chosen on validation). See ``lteval.rank.study`` for the statistics.
Writes ``validate.json`` (with every feature set's row) and ``index.html``.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from lteval.cli import common
from lteval.cli.config import Parser
from lteval.errors import LtevalError, UsageError, first_line
from lteval.features import FeatureOptions, RunOptions, backbone_features, resolve_device
from lteval.rank.schema import TIMINGS  # to timings.json: validate.json stays byte-identical

PRETRAINED_LAYERS = {
    "torchvision:mobilenet_v2/IMAGENET1K_V1": ["features.10", "features.16"],
    "timm:tf_efficientnet_lite0": ["blocks.3", "blocks.5"],
    "timm:tf_efficientnet_lite1": ["blocks.3", "blocks.5"],
    "timm:tf_efficientnet_lite2": ["blocks.3", "blocks.5"],
}
CONTROL = "random:torchvision:mobilenet_v2/IMAGENET1K_V1"
CNN_EPOCHS = (1, 3, 10)
PANEL = [
    *(
        f"{b}{f'@{layer}' if layer else ''}"
        for b, ls in PRETRAINED_LAYERS.items()
        for layer in [None, *ls]
    ),
    CONTROL,
    *(f"cnn:{e}" for e in CNN_EPOCHS),
]
"""The default panel: 16 feature sets per dataset. A member is ``BACKBONE``
(pooled pre-logits), ``BACKBONE@LAYER`` (mean over space of that module's output)
or ``cnn:EPOCHS`` (the small CNN trained that many epochs)."""
SPLITS = {
    "animal-mnist-lt": {},
    "fashion-mnist-lt": {"n_max": 200, "eval_per_class": 50},
    "mnist5k-lt": {},
}
"""Split options per dataset: the demo's scale (n_max 200, IF 100, 50 eval images
per class on animal-mnist-lt) so that the panel runs within 20 minutes on 2 cores."""


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
    p.add_argument("--members", help="comma-separated panel members (default: the 16 of PANEL)")
    p.add_argument(
        "--heads",
        default="all",
        help="baseline heads next to DLSA and the probe, for the ground truth (default: all)",
    )
    p.add_argument("--input-size", type=int, default=128, help="model input side (default: 128)")
    p.add_argument("--out", default="reports/validate", help="output folder (default: %(default)s)")
    p.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap replicates over feature sets"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    p.add_argument("--device", default="auto", help="torch device (default: auto)")
    p.add_argument("--batch-size", type=int, default=64, help="extraction batch size")
    p.add_argument("--config", metavar="FILE", help="YAML of these options; 'dlsa:' sets DLSA")
    p.add_argument(
        "--publish",
        action="store_true",
        help="also write the pooled correlations into lteval's package "
        "(lteval/report/study_summary.json), which every rank report quotes",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def parse_member(member: str) -> tuple[str, str | None, int | None]:
    """(backbone, layer, cnn epochs) of a panel member string."""
    if member.startswith("cnn:"):
        epochs = member[4:]
        if not epochs.isdigit() or int(epochs) < 1:
            raise UsageError(f"panel member {member!r}: write cnn:EPOCHS with EPOCHS >= 1")
        return "cnn", None, int(epochs)
    name, _, layer = member.partition("@")
    return name, layer or None, None


def _features(member: str, dataset, args) -> tuple[dict, dict]:
    """The member's {split: (X, y)} and its facts (feature_dim, num_params, kind)."""
    name, layer, epochs = parse_member(member)
    if epochs is not None:
        from lteval.backbones.small_cnn import SmallCNNConfig, cnn_features

        splits, model = cnn_features(dataset, args.seed, SmallCNNConfig(epochs=epochs))
        params = sum(p.numel() for m in (model.body, model.embed) for p in m.parameters())
        return splits, {"kind": "cnn", "epochs": epochs, "num_params": int(params)}
    feats, _, backbone = backbone_features(
        name,
        dataset,
        seed=args.seed,
        input_size=args.input_size,
        options=FeatureOptions(layer=layer),
        run=RunOptions(device=resolve_device(args.device), batch_size=args.batch_size),
        progress=not args.quiet,
        tag=f"{member}:",
    )
    kind = "control" if backbone.control else "pretrained" if backbone.pretrained else "random"
    splits = {k: (np.asarray(X), y) for k, (X, y) in feats.items()}
    return splits, {"kind": kind, "layer": layer, "num_params": backbone.num_params}


def run(args: argparse.Namespace) -> int:
    from lteval.data import load_dataset
    from lteval.rank.scoring import HEADS, check_heads, score_features
    from lteval.rank.study import SCORES, TRUTHS, correlations, ground_truth, verdicts
    from lteval.report import study

    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    bad = [d for d in datasets if d not in SPLITS]
    if not datasets or bad:
        raise UsageError(f"--datasets {args.datasets!r}: choose from {sorted(SPLITS)}")
    members = [m.strip() for m in (args.members or ",".join(PANEL)).split(",") if m.strip()]
    if len(members) < 3 or len(set(members)) != len(members):
        raise UsageError("--members must name at least 3 distinct feature sets")
    for m in members:
        parse_member(m)
    heads = list(HEADS) if args.heads == "all" else check_heads(args.heads.split(","))
    if args.dlsa is not None and not isinstance(args.dlsa, dict):
        raise UsageError("'dlsa' in --config must be a mapping of DLSA settings")
    out = Path(args.out).expanduser()
    common.check_out(args.out)
    device = str(resolve_device(args.device))
    t0 = time.perf_counter()
    rows, failures, timings = [], [], []
    loaded = {d: load_dataset(d, seed=args.seed, **SPLITS[d]) for d in datasets}  # fail early
    for d, ds in loaded.items():
        C = len(ds.class_names)
        for i, m in enumerate(members, 1):
            tag = f"[{d} {i}/{len(members)}] {m}"
            t1 = time.perf_counter()
            try:
                splits, facts = _features(m, ds, args)
                bs = score_features(
                    m,
                    splits,
                    num_classes=C,
                    seed=args.seed,
                    device=device,
                    dlsa_overrides=args.dlsa,
                    heads=heads,
                )
            except Exception as e:  # one member's failure must not end the study
                msg = first_line(e)
                log.error(f"{tag}: FAILED: {msg}")
                failures.append({"dataset": d, "member": m, "error": msg})
                if not isinstance(e, LtevalError):
                    failures[-1]["traceback"] = traceback.format_exc()
                continue
            row = {k: v for k, v in bs.row.items() if k not in TIMINGS}
            row.update(dataset=d, member=m, **facts)
            timings.append(
                {"dataset": d, "member": m, "seconds": round(time.perf_counter() - t1, 1)}
                | {k: bs.row.get(k) for k in TIMINGS}
            )
            row.update(ground_truth(row, ["dlsa", "probe", *heads]))
            rows.append(row)
            log.info(
                f"{tag}: separability {row['separability']:.3f} (p {row['separability_p']:.2g}), "
                f"truth few {row['truth_few']:.3f} via {row['truth_method']}"
            )
    short = [d for d in datasets if sum(r["dataset"] == d for r in rows) < 3]
    if short:
        log.error(f"fewer than 3 feature sets scored on {short}: no study written")
        return 1
    corr = correlations(rows, SCORES, TRUTHS, n_boot=args.bootstrap, seed=args.seed)
    result = {
        "command": "python -m lteval.validate " + shlex.join(args.argv),
        "seed": args.seed,
        "datasets": {d: SPLITS[d] for d in datasets},
        "panel": members,
        "n_boot": args.bootstrap,
        "scores": SCORES,
        "correlations": corr,
        "verdicts": {t: verdicts(corr, t) for t in TRUTHS},
        "feature_sets": rows,
        "failed": failures,
        "dlsa_overrides": args.dlsa,
    }
    wall = {"wall_seconds": round(time.perf_counter() - t0, 1), "feature_sets": timings}
    path = study.write_study(out, result, wall)
    log.info(f"study: {path}")
    if args.publish:
        study.write_json_atomic(study.SUMMARY, study.summary(result))
        log.info(f"published: {study.SUMMARY}")
    return 0


def main(argv: list[str] | None = None, prog: str = "lteval validate") -> int:
    return common.run_main(run, build_parser(prog), argv)


if __name__ == "__main__":
    sys.exit(main())
