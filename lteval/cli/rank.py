"""``python -m lteval.rank``: extract (cached), score and rank backbones, write a report.

Examples::

    python -m lteval.rank --backbones timm:resnet18,open_clip:ViT-B-32/openai --out reports/run
    python -m lteval.rank --dataset folder --data-root ~/data/mytask --backbones timm:resnet50
    python -m lteval.rank --features feats/ --out reports/mine   # DLSA h5 files per backbone
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import numpy as np
import torch

from lteval.cli import common
from lteval.data import carve_validation
from lteval.errors import UsageError
from lteval.features import read_feature_dir, resolve_device, versions
from lteval.rank import check_metric, score_features, write_results
from lteval.report import render_report


def build_parser() -> argparse.ArgumentParser:
    p = common.new_parser("python -m lteval.rank", __doc__)
    g = p.add_argument_group("ranking")
    g.add_argument(
        "--features",
        metavar="DIR",
        help="rank precomputed features instead of extracting: one sub-folder per "
        "backbone with feature_train.h5 and feature_test.h5 (datasets 'features' "
        "N x D float and 'labels' N int, the DLSA reference format)",
    )
    g.add_argument(
        "--by", default="separability", help="results column to rank by (default: %(default)s)"
    )
    g.add_argument("--out", default="reports/run", help="output folder (default: %(default)s)")
    return p


def _from_features(args, emit, device: str) -> tuple[dict, list]:
    feature_sets = read_feature_dir(args.features)
    scores = []
    for i, (name, fs) in enumerate(feature_sets.items(), 1):
        (Xtr, ytr), (Xte, yte) = fs["train"], fs["test"]
        rng = np.random.default_rng(args.seed)
        tr, va = carve_validation(np.arange(len(ytr)), ytr, args.val_fraction, rng)
        C = int(max(ytr.max(), yte.max()) + 1)
        emit(f"[{i}/{len(feature_sets)}] {name}: scoring {len(tr)} train / {len(yte)} eval")
        s = score_features(
            name,
            {"train": (Xtr[tr], ytr[tr]), "val": (Xtr[va], ytr[va]), "eval": (Xte, yte)},
            num_classes=C,
            seed=args.seed,
            device=device,
        )
        s.row.update(
            precomputed=True,
            pretrained=None,
            weights="precomputed features",
            num_params=None,
            extract_seconds=None,
            cache_key=None,
        )
        scores.append(s)
    dataset = {
        "name": f"features:{Path(args.features).name}",
        "source": str(Path(args.features).resolve()),
        "split_hash": None,
    }
    return dataset, scores


def _from_backbones(args, emit, device: str) -> tuple[dict, list]:
    names, weights, dataset = common.prepare(args)
    scores = []
    for i, name in enumerate(names, 1):
        tag = f"[{i}/{len(names)}]"
        feats, manifest, backbone = common.extract_one(name, dataset, args, weights, emit, tag)
        emit(f"{tag} {name}: scoring (DLSA + Balanced-Softmax probe)")
        s = score_features(
            name,
            {k: (np.asarray(X), y) for k, (X, y) in feats.items()},
            num_classes=len(dataset.class_names),
            seed=args.seed,
            class_names=dataset.class_names,
            device=device,
        )
        s.row.update(
            precomputed=False,
            pretrained=backbone.pretrained,
            weights=backbone.weights,
            num_params=backbone.num_params,
            cache_key=manifest["key"],
            extract_seconds=round(manifest.get("extract_seconds", 0.0), 3),
        )
        emit(
            f"{tag} {name}: separability {s.row['separability']:.3f}, "
            f"DLSA balanced {s.row['dlsa_balanced']:.3f}, probe {s.row['probe_balanced']:.3f}"
        )
        scores.append(s)
    return dataset.manifest(), scores


def run(args: argparse.Namespace) -> int:
    emit = common.log(args.quiet)
    if bool(args.features) == bool(args.backbones):
        raise UsageError("give exactly one of --backbones and --features")
    check_metric(args.by)
    device = str(resolve_device(args.device))
    dataset, scores = (_from_features if args.features else _from_backbones)(args, emit, device)
    run_info = {
        "command": "python -m lteval.rank " + shlex.join(args.argv),
        "dataset": dataset,
        "seed": args.seed,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "versions": versions(),
        "random_weights": [s.row["backbone"] for s in scores if s.row.get("pretrained") is False],
    }
    out = Path(args.out)
    write_results(out, run_info, scores, args.by)
    path = render_report(out)
    emit(f"report: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return common.run_main(run, build_parser(), argv)
