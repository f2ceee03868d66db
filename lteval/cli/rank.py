"""``python -m lteval.rank``: extract (cached), score and rank backbones, write a report.

Examples::

    python -m lteval.rank --backbones timm:resnet18,open_clip:ViT-B-32/openai --out reports/run
    python -m lteval.rank --backbones-file backbones.txt --config run.yaml --out reports/run
    python -m lteval.rank --dataset folder --data-root ~/data/mytask --backbones timm:resnet50
    python -m lteval.rank --features feats/ --out reports/mine   # DLSA h5 files per backbone

A backbone that fails (missing weights, a bad checkpoint, an error while
extracting or scoring) is recorded as failed, with its error, in the results and
the report; the run goes on. The exit status is non-zero only if every backbone
fails (2 when every failure is a user error such as missing weights, 1 otherwise).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import traceback
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from lteval import atomic
from lteval.cli import common
from lteval.cli.config import resolved_config
from lteval.data import carve_validation
from lteval.errors import UsageError, first_line
from lteval.features import read_feature_dir, resolve_device, versions
from lteval.rank import (
    HEADS,
    METRICS,
    BackboneScore,
    check_heads,
    check_metric,
    failed,
    score_features,
    validate_ranking,
    write_results,
)
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
        "N x D float and 'labels' N int, the DLSA reference format)",
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
        "comma-separated, or 'none' (default: %(default)s)",
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


def _guard(name: str, phase: str, fn, *a, **kw):
    """Run one backbone's phase; on failure return a failed record instead of raising."""
    try:
        return fn(*a, **kw)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # one backbone's failure must not end the run
        log.error(f"{name}: FAILED while {phase}: {first_line(e)}")
        rec = failed(name, e, phase)
        if rec.row["error_kind"] == "bug":
            rec.row["traceback"] = traceback.format_exc()
        return rec


def _score(name, splits, args, device, heads, **kw) -> BackboneScore:
    """``score_features`` with the run's options, guarded (a failure becomes a record)."""
    return _guard(
        name,
        "scoring",
        score_features,
        name,
        splits,
        seed=args.seed,
        device=device,
        heads=heads,
        dlsa_overrides=args.dlsa,
        **kw,
    )


def _bar(total: int, quiet: bool) -> tqdm:
    return tqdm(total=total, desc="lteval.rank", unit="step", file=sys.stderr, disable=quiet)


def _from_features(args, device: str, heads: list[str]) -> tuple[dict, list]:
    feature_sets = read_feature_dir(args.features)
    scores, remapped = [], {}
    with _bar(len(feature_sets), args.quiet) as bar:  # closed on Ctrl-C too
        for i, (name, fs) in enumerate(feature_sets.items(), 1):
            (Xtr, ytr), (Xte, yte) = fs["train"], fs["test"]
            ids, (ytr, yte) = dense_labels(ytr, yte)
            if len(ids) and ids[-1] != len(ids) - 1:  # sparse ids: C would count absent classes
                remapped[name] = ids.tolist()
            rng = np.random.default_rng(args.seed)
            tr, va = carve_validation(np.arange(len(ytr)), ytr, args.val_fraction, rng)
            bar.set_description(f"[{i}/{len(feature_sets)}] {name}: scoring")
            splits = {"train": (Xtr[tr], ytr[tr]), "val": (Xtr[va], ytr[va]), "eval": (Xte, yte)}
            s = _score(
                name,
                splits,
                args,
                device,
                heads,
                num_classes=len(ids),
                class_names=[str(c) for c in ids],
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
            bar.update(1)
    dataset = {
        "name": f"features:{Path(args.features).name}",
        "source": str(Path(args.features).resolve()),
        "split_hash": None,
    }
    if remapped:
        dataset["labels_remapped"] = remapped
    return dataset, scores


def dense_labels(*ys: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """(sorted distinct label ids over ``ys``, each ``y`` as positions 0..C-1 in them)."""
    ids = np.unique(np.concatenate(ys))
    return ids, [np.searchsorted(ids, y).astype(np.int64) for y in ys]


def _few(ids: np.ndarray) -> str:
    return "{" + ", ".join(map(str, ids[:6].tolist())) + (", ...}" if len(ids) > 6 else "}")


def _from_backbones(args, device: str, heads: list[str]) -> tuple[dict, list]:
    names, weights, dataset, missing = common.prepare(args)
    scores: list[BackboneScore] = []
    with _bar(2 * len(names), args.quiet) as bar:  # closed on Ctrl-C too
        for i, name in enumerate(names, 1):
            tag = f"[{i}/{len(names)}]"
            if name in missing:
                log.error(f"{tag} {name}: FAILED: pretrained weights not found (see the report)")
                scores.append(failed(name, str(missing[name]), "weights", kind="weights"))
                bar.update(2)
                continue
            bar.set_description(f"{tag} {name}: features (cache or extraction)")
            got = _guard(
                name,
                "extracting",
                common.extract_one,
                name,
                dataset,
                args,
                weights,
                tag,
            )
            bar.update(1)
            if isinstance(got, BackboneScore):
                scores.append(got)
                bar.update(1)
                continue
            feats, manifest, backbone = got
            bar.set_description(f"{tag} {name}: scoring")
            splits = {k: (np.asarray(X), y) for k, (X, y) in feats.items()}
            s = _score(
                name,
                splits,
                args,
                device,
                heads,
                num_classes=len(dataset.class_names),
                class_names=dataset.class_names,
            )
            bar.update(1)
            s.row.update(
                precomputed=False,
                pretrained=backbone.pretrained,
                control=backbone.control,
                weights=backbone.weights,
                **backbone.weights_info(),
                input_size=backbone.input_size,
                num_params=backbone.num_params,
                cache_key=manifest["key"],
                extract_seconds=round(manifest.get("extract_seconds", 0.0), 3),
                skipped_images=manifest.get("bad_images", {}).get("files", []),
            )
            if s.ok:
                log.info(
                    f"{tag} {name}: separability {s.row['separability']:.3f}, DLSA balanced "
                    f"{s.row['dlsa_balanced']:.3f}, probe {s.row['probe_balanced']:.3f}"
                )
            scores.append(s)
    return dataset.manifest(), scores


def run(args: argparse.Namespace) -> int:
    has_backbones = bool(args.backbones or args.backbones_file)
    if bool(args.features) == has_backbones:
        raise UsageError("give exactly one of --backbones (or --backbones-file) and --features")
    check_metric(args.by)
    heads = [] if args.heads.strip() == "none" else check_heads(_split(args.heads))
    method = args.by.split("_", 1)[0]
    if method in HEADS and method not in heads:
        raise UsageError(
            f"--by {args.by} ranks by the {method!r} head, which --heads {args.heads!r} "
            f"does not run; add {method!r} to --heads or choose another --by"
        )
    if args.dlsa is not None and not isinstance(args.dlsa, dict):
        raise UsageError("'dlsa' in --config must be a mapping of DLSA settings")
    if args.dlsa:
        from lteval.dlsa import from_dict

        try:
            from_dict(args.dlsa)
        except (ValueError, TypeError) as e:
            raise UsageError(f"'dlsa' in --config: {e}") from None
    common.check_out(Path(args.out))
    device = str(resolve_device(args.device))
    source = _from_features if args.features else _from_backbones
    dataset, scores = source(args, device, heads)
    ok = [s for s in scores if s.ok]
    if not ok:
        for s in scores:
            log.error(f"{s.row['backbone']}: {s.row['error']}")
        log.error("every backbone failed: no results written")
        return 1 if any(s.row["error_kind"] == "bug" for s in scores) else 2
    log.info(f"ranking validity: {args.bootstrap} bootstrap replicates")
    try:
        validity = validate_ranking(ok, args.by, n_boot=args.bootstrap, seed=args.seed)
    except ValueError as e:  # e.g. --features folders with different test sets
        log.error(f"ranking validity skipped: {e}")
        validity = {"skipped": str(e), "intervals": {}, "pairs": [], "correlations": []}
    defined = any(np.isfinite(s.row.get(args.by, np.nan)) for s in ok)
    if not defined:
        log.warning(f"{args.by} is NaN for every backbone: the ranking is undefined")
    run_info = {
        "ranking_defined": defined,
        "command": "lteval rank " + shlex.join(args.argv),
        "dataset": dataset,
        "seed": args.seed,
        "device": device,
        "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else None,
        "torch_threads": torch.get_num_threads(),
        "versions": versions(),
        "heads": heads,
        "random_weights": [
            s.row["backbone"]
            for s in scores
            if s.row.get("pretrained") is False and not s.row.get("control")
        ],
        "controls": [s.row["backbone"] for s in scores if s.row.get("control")],
        "failed": [s.row["backbone"] for s in scores if not s.ok],
        "warnings": run_warnings(dataset, ok),
    }
    out = Path(args.out)
    with atomic.folder(out) as tmp:  # a reader sees the old report or the new one
        write_results(tmp, run_info, scores, args.by, validity)
        config = resolved_config(args)
        (tmp / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=True))
        render_report(tmp)
    log.info(f"report: {out / 'index.html'}")
    if len(ok) < len(scores):
        log.error(f"{len(scores) - len(ok)} of {len(scores)} backbones failed (see the report)")
    return 0


def run_warnings(dataset: dict, ok: list[BackboneScore]) -> list[str]:
    """What the report's header must say about choices made on the user's data."""
    out = []
    empty = dataset.get("empty_class_folders_left_out")
    if empty:
        out.append(f"{len(empty)} empty class folder(s) left out: {', '.join(empty)}")
    for name, ids in dataset.get("labels_remapped", {}).items():
        out.append(
            f"{name}: labels {_few(np.asarray(ids))} are not 0..{len(ids) - 1}; remapped to "
            f"{len(ids)} classes in sorted order (results.json: run.dataset.labels_remapped)"
        )
    for s in ok:
        if s.row.get("warning"):
            out.append(f"{s.row['backbone']}: {s.row['warning']}")
        if s.row.get("skipped_images"):
            n = len(s.row["skipped_images"])
            out.append(f"{s.row['backbone']}: {n} unreadable image(s) left out (listed below)")
    for w in out:
        log.warning(w)
    return out


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def main(argv: list[str] | None = None, prog: str = "lteval rank") -> int:
    return common.run_main(run, build_parser(prog), argv)
