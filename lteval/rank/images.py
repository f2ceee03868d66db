"""Ranking backbones on images: each backbone's features (cached extraction) and
its score, one after another (under torchrun: this rank's share), a failure
recorded and the run going on."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from lteval.data import ImageDataset
from lteval.features import FeatureOptions, RunOptions, backbone_features, check_backbones
from lteval.rank.distributed import Share
from lteval.rank.precomputed import log_score, progress_bar
from lteval.rank.scoring import BackboneScore, check_splits, failed, guarded

log = logging.getLogger(__name__)


def from_backbones(
    names: list[str],
    dataset: ImageDataset,
    weights: dict[str, Path],
    score: Callable,
    *,
    allow_random_init: bool,
    seed: int,
    input_size: int | None,
    features: FeatureOptions | None,
    runtime: RunOptions,
    progress: bool,
) -> tuple[dict, list[BackboneScore]]:
    missing = check_backbones(names, weights, allow_random_init)
    share = Share.current()
    runtime = replace(runtime, shard_images=False) if share.world > 1 else runtime
    features_of = functools.partial(
        backbone_features,
        allow_random_init=allow_random_init,
        seed=seed,
        input_size=input_size,
        options=features,
        run=runtime,
        progress=progress,
    )
    mine = [i for i in range(len(names)) if share.mine(i)]
    with progress_bar(2 * len(mine), progress) as bar:  # closed on Ctrl-C too
        one = functools.partial(
            _one_backbone,
            names=names, dataset=dataset, weights=weights, missing=missing, score=score,
            features_of=features_of, bar=bar,
        )  # fmt: skip
        return dataset.manifest(), share.gather(len(names), one)


def _one_backbone(
    i: int, *, names: list[str], dataset: ImageDataset, weights: dict, missing: dict,
    score: Callable, features_of: Callable, bar,
) -> BackboneScore:  # fmt: skip
    """Extract (cached, with ``features_of(name, dataset, weights_file=, tag=)``) and
    score ``names[i]``: its score, or its failure record."""
    name = names[i]
    tag = f"[{i + 1}/{len(names)}]"
    if name in missing:
        log.error(f"{tag} {name}: FAILED: pretrained weights not found (see the report)")
        bar.update(2)
        return failed(name, str(missing[name]), "weights", kind="weights")
    bar.set_description(f"{tag} {name}: features (cache or extraction)")
    got = guarded(
        name, "extracting", features_of, name, dataset, weights_file=weights.get(name), tag=tag
    )
    bar.update(1)
    if isinstance(got, BackboneScore):
        bar.update(1)
        return got
    feats, manifest, backbone = got
    bar.set_description(f"{tag} {name}: scoring")
    splits = {k: (np.asarray(X), y) for k, (X, y) in feats.items()}
    # unreadable images left out (--skip-bad-images) are the same for every
    # backbone: a class they emptied ends the run, in one line
    check_splits(splits, len(dataset.class_names), dataset.class_names)
    s = score(name, splits, num_classes=len(dataset.class_names), class_names=dataset.class_names)
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
    log_score(tag, s)
    return s
