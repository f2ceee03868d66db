"""One backbone's features for one dataset, by name: check the names and weights
before any work, load the backbone, and fetch its features from the cache
(extracting on a miss) with a progress bar per split."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lteval.backbones import Backbone, load_backbone, resolve_weights
from lteval.data import ImageDataset
from lteval.errors import UsageError, WeightsNotFoundError, arg
from lteval.features.extract import FeatureOptions, RunOptions
from lteval.features.job import get_features

log = logging.getLogger(__name__)

Splits = dict[str, tuple[np.ndarray, np.ndarray]]


def check_backbones(
    names: list[str], weights: Mapping[str, Path] | None = None, allow_random_init: bool = False
) -> dict[str, Exception]:
    """Fail fast, before any extraction, on a bad name or a ``weights`` checkpoint that
    does not fit its architecture (UsageError / BackboneError).

    Returns ``{name: WeightsNotFoundError}`` for the backbones whose pretrained weights
    are missing (empty with ``allow_random_init``, which runs them with random weights).
    """
    weights = dict(weights or {})
    unknown = set(weights) - set(names)
    if unknown:
        raise UsageError(
            f"{arg('weights')} names {sorted(unknown)}, which are not in {arg('backbones')}"
        )
    missing: dict[str, Exception] = {}
    for n in names:
        try:
            resolve_weights(n, weights.get(n), allow_random_init)
        except WeightsNotFoundError as e:
            missing[n] = e
    for n, path in weights.items():  # a file the user named must fit, before any work
        if n not in missing:
            load_backbone(n, weights_file=path)
    return missing


def backbone_features(
    name: str,
    dataset: ImageDataset,
    *,
    weights_file: str | Path | None = None,
    allow_random_init: bool = False,
    seed: int = 0,
    input_size: int | None = None,
    options: FeatureOptions | None = None,
    run: RunOptions | None = None,
    progress: bool = True,
    tag: str = "",
) -> tuple[Splits, dict, Backbone]:
    """Load backbone ``name`` and return ``(features, manifest, backbone)``.

    ``features`` maps each split ("train", "val", "eval") to ``(X, y)``: X is an
    (N, D) array (memory-mapped from the cache), y the (N,) int64 labels.
    ``manifest`` is the cache entry's record (its ``key``, the dataset's split hash,
    ``extract_seconds``, any ``bad_images``). ``seed`` seeds random weights (a
    ``random:`` control, or ``allow_random_init`` when weights are missing).
    """
    backbone = load_backbone(
        name,
        weights_file=weights_file,
        allow_random_init=allow_random_init,
        seed=seed,
        input_size=input_size,
    )
    who = f"{tag} {name}".strip()
    if backbone.control:
        log.info(f"{who}: random-init control (seeded random weights, on purpose)")
    elif not backbone.pretrained:
        log.info(f"{who}: pretrained weights not found; using RANDOM weights")
    t0, bars = time.perf_counter(), {}

    def update(split: str, done: int, total: int) -> None:
        if not progress:
            return
        if split not in bars:
            bars[split] = tqdm(
                total=total,
                position=1,
                leave=False,
                desc=f"{who}: extracting {split}",
                unit="img",
                file=sys.stderr,
                mininterval=2.0,
            )
        bars[split].update(done - bars[split].n)
        if done >= total:
            bars[split].close()

    try:
        feats, manifest = get_features(
            backbone, dataset, run=run or RunOptions(), options=options, progress=update
        )
    finally:
        for bar in bars.values():
            bar.close()
    bad = manifest.get("bad_images", {}).get("count", 0)
    log.info(
        f"{who}: features ready ({time.perf_counter() - t0:.1f}s, cache "
        f"{manifest['key']}{f', {bad} unreadable images skipped' if bad else ''})"
    )
    return feats, manifest, backbone
