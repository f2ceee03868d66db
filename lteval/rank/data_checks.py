"""Checks that a backbone's splits and features can give a meaningful score: the
user's data, refused in one line (or warned about) before any fit."""

from __future__ import annotations

import numpy as np

from lteval.errors import DatasetError, FeatureError, arg
from lteval.heads.inputs import FEATURE_RMS, FEATURE_RMS_LIMIT, feature_rms

Split = tuple[np.ndarray, np.ndarray]


def check_splits(
    splits: dict[str, Split], num_classes: int | None = None, class_names: list[str] | None = None
) -> None:
    """DatasetError unless the splits can give a meaningful score: train and eval
    each hold at least 2 classes and 2 samples, validation (where every head
    chooses its settings) at least 2 classes, and each of the ``num_classes``
    classes at least one train sample (a class with none, e.g. every image of it
    unreadable, would be averaged away in silence)."""
    for split, what in (("train", "train"), ("val", "validation"), ("eval", "eval")):
        X, y = splits[split]
        classes = np.unique(y)
        if len(classes) < 2 or len(y) < 2:
            fix = (
                f"give each class at least 3 train samples, or raise {arg('val_fraction')}"
                if split == "val"
                else "give more data or more classes"
            )
            raise DatasetError(
                f"the {what} split holds {len(y)} samples of {len(classes)} class(es) "
                f"({classes[:5].tolist()}); a ranking needs at least 2 classes with samples "
                f"in train, validation and eval: {fix}"
            )
    if num_classes is not None:
        present = np.unique(splits["train"][1])
        absent = np.setdiff1d(np.arange(num_classes), present)
        if len(absent):
            raise DatasetError(
                f"{len(absent)} of {num_classes} classes have no train samples "
                f"({some_classes(absent, class_names)}; every image of "
                "them unreadable?); fix or remove them"
            )


def some_classes(classes: np.ndarray, class_names: list[str] | None) -> str:
    """The first five of ``classes`` by name (or id), for a message."""
    names = [class_names[c] if class_names else str(c) for c in classes[:5]]
    return ", ".join(names) + (", ..." if len(classes) > 5 else "")


def check_features(splits: dict[str, Split]) -> list[str]:
    """FeatureError when a split's features hold NaN or inf, are the same vector for
    every sample (all zero: a dead layer or a wrong --layer), or have a scale outside
    ``FEATURE_RMS_LIMIT``: nothing could be learned from them, and every score would
    be noise, chance or a division by zero. Returns warnings for a scale outside
    ``FEATURE_RMS``."""
    warnings = []
    for split, (X, _) in splits.items():
        X = np.asarray(X)
        bad = ~np.isfinite(X).all(axis=1)
        if bad.any():
            raise FeatureError(
                f"its {split} features hold NaN or inf in {int(bad.sum())} of {len(X)} rows: "
                f"the backbone overflowed or is broken; check its weights, {arg('layer')} and "
                f"{arg('storage')}"
            )
        if len(X) > 1 and not (X != X[0]).any():
            what = "all zero" if not X[0].any() else "one constant vector"
            raise FeatureError(
                f"its {split} features are {what} for all {len(X)} samples ({X.shape[1]} "
                f"dims): a dead layer or a wrong {arg('layer')}? check the backbone and "
                f"{arg('layer')}"
            )
        rms = feature_rms(X)
        lo, hi = FEATURE_RMS_LIMIT
        if not lo <= rms <= hi:
            raise FeatureError(
                f"its {split} features have a root mean square of {rms:.3g}, outside "
                f"{lo:g}..{hi:g}, where float32 arithmetic under- or overflows; divide them "
                f"by a constant (extracted features: {arg('l2_normalize', True)})"
            )
        lo, hi = FEATURE_RMS
        if split == "train" and not lo <= rms <= hi:
            warnings.append(
                f"its train features have a root mean square of {rms:.3g}, outside "
                f"{lo:g}..{hi:g}: the linear heads (probe, ce, la, crt, taunorm, lws) can lose "
                "accuracy at such scales (on planted features: chance near 1e-12 and 1e18); "
                "NCM and kNN do not depend on scale"
            )
    return warnings
