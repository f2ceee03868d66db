"""Precomputed features (``--features DIR``: one sub-folder of h5 files per backbone)
as scored backbones, and the run's progress bar."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lteval.data import carve_validation
from lteval.errors import FeatureFileError, arg
from lteval.features import read_feature_dir
from lteval.rank.distributed import Share
from lteval.rank.scoring import BackboneScore
from lteval.seeds import derived_rng

log = logging.getLogger(__name__)


def progress_bar(total: int, progress: bool) -> tqdm:
    """The run's bar over backbone phases, on stderr."""
    return tqdm(total=total, desc="lteval.rank", unit="step", file=sys.stderr, disable=not progress)


def log_score(tag: str, s: BackboneScore) -> None:
    """One log line for a scored backbone: its separability and DLSA and probe accuracy."""
    if s.ok:
        log.info(
            f"{tag} {s.row['backbone']}: separability {s.row['separability']:.3f}, DLSA "
            f"balanced {s.row['dlsa_balanced']:.3f}, probe {s.row['probe_balanced']:.3f}"
        )


def dense_labels(*ys: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """(sorted distinct label ids over ``ys``, each ``y`` as positions 0..C-1 in them)."""
    ids = np.unique(np.concatenate(ys))
    return ids, [np.searchsorted(ids, y).astype(np.int64) for y in ys]


def from_feature_dir(
    folder: Path,
    val_fraction: float,
    seed: int,
    score: Callable,
    progress: bool,
    share: Share | None = None,
) -> tuple[dict, list[BackboneScore]]:
    """(the run's dataset record, one score per backbone) for the h5 feature sets of
    ``folder``: labels made dense, validation carved from each train file with
    ``seed``, each set scored by ``score(name, splits, num_classes=, class_names=)``.
    Under torchrun (``share``), this rank scores its share and rank 0 gets them all."""
    share = share or Share()
    feature_sets = read_feature_dir(folder)
    check_same_classes(feature_sets)
    names, prepared, remapped, hashes = list(feature_sets), {}, {}, {}
    for name, fs in feature_sets.items():  # the dataset record covers every backbone
        (_, ytr), (_, yte) = fs["train"], fs["test"]
        ids, (ytr, yte) = dense_labels(ytr, yte)  # class names sort into ids too
        if ids.dtype.kind != "U" and len(ids) and ids[-1] != len(ids) - 1:
            remapped[name] = ids.tolist()  # sparse ids: C would count absent classes
        rng = derived_rng(seed, "validation-carve")
        tr, va = carve_validation(np.arange(len(ytr)), ytr, val_fraction, rng)
        hashes[name] = _split_hash(ids, ytr, va, yte, val_fraction, seed)
        prepared[name] = ids, ytr, yte, tr, va

    def one(i: int) -> BackboneScore:
        name, tag = names[i], f"[{i + 1}/{len(names)}]"
        ids, ytr, yte, tr, va = prepared[name]
        Xtr, Xte = feature_sets[name]["train"][0], feature_sets[name]["test"][0]
        bar.set_description(f"{tag} {name}: scoring")
        splits = {"train": (Xtr[tr], ytr[tr]), "val": (Xtr[va], ytr[va]), "eval": (Xte, yte)}
        s = score(name, splits, num_classes=len(ids), class_names=[str(c) for c in ids])
        s.row.update(
            precomputed=True,
            pretrained=None,
            weights="precomputed features",
            num_params=None,
            extract_seconds=None,
            cache_key=None,
        )
        log_score(tag, s)
        bar.update(1)
        return s

    mine = [i for i in range(len(names)) if share.mine(i)]
    with progress_bar(len(mine), progress) as bar:  # closed on Ctrl-C too
        scores = share.gather(len(names), one)
    distinct = sorted(set(hashes.values()))
    data = {
        "name": f"features:{folder.name}",
        "source": str(folder.resolve()),
        "split_hash": distinct[0] if len(distinct) == 1 else None,  # None: they differ
        "split_hashes": hashes,
    }
    if remapped:
        data["labels_remapped"] = remapped
    return data, scores


def check_same_classes(feature_sets: dict) -> None:
    """FeatureFileError unless every backbone's files hold the same classes: backbones
    scored on different label sets are not rankable against each other."""
    first, want = None, None
    for name, fs in feature_sets.items():
        got = np.unique(np.concatenate([fs["train"][1], fs["test"][1]]))
        if want is None:
            first, want = name, got
        elif len(got) != len(want) or (got != want).any():
            only = np.setdiff1d(want, got).tolist()[:3] or np.setdiff1d(got, want).tolist()[:3]
            raise FeatureFileError(
                f"{arg('feature_dir')}: backbones {first!r} and {name!r} hold different classes "
                f"({len(want)} and {len(got)}; e.g. {only} is in one only); a ranking "
                "compares backbones on one label set: give every backbone the same classes"
            )


def _split_hash(ids, ytr, va, yte, val_fraction: float, seed: int) -> str:
    """sha256 (first 16 hex digits) of a feature set's classes, labels and carved
    validation rows: equal for backbones scored on the same split."""
    blob = json.dumps(
        {
            "classes": ids.tolist(),
            "train_labels": ytr.tolist(),
            "val_rows": va.tolist(),
            "eval_labels": yte.tolist(),
            "val_fraction": val_fraction,
            "seed": seed,
        }
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
