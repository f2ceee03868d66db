"""The input checks every lteval estimator shares (the heads and DLSA alike).

scikit-learn's ``validate_data`` checks the features: a 2-D, finite, real array
(dense; a DataFrame's column names are remembered as ``feature_names_in_``), cast
to float32, whose width at ``predict`` matches ``fit``'s (``n_features_in_``).
Labels may be any sortable hashable values (ints, strings): ``classes_`` is their
sorted set, or the ``classes`` passed to ``fit`` (which may name classes absent
from ``y``), and the estimators work on each label's index in ``classes_``.
Every bad input is a ValueError (TypeError for sparse input) naming what is wrong.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, column_or_1d, validate_data

from lteval.data.profiles import per_class_holdout
from lteval.seeds import derived_rng

FEATURES = dict(dtype=np.float32, ensure_min_samples=2)
"""``check_array`` settings of training features: float32, at least 2 rows."""


def check_fit_input(
    est, X, y, X_val=None, y_val=None, classes=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Checked ``(X (N, D) float32, y (N,) class indices, X_val, y_val)``.

    Sets ``est.n_features_in_`` (and ``feature_names_in_`` for a DataFrame) and
    ``est.classes_``: ``classes`` (all class labels; default: those of y and y_val),
    sorted. X_val / y_val: both or neither; (None, None) when not given or empty.
    """
    X, y = validate_data(est, X, y, **FEATURES)
    check_scale(X, "X")
    y = _labels(y, "y")
    Xv, yv = _validation(est, X_val, y_val)
    if Xv is not None:
        check_scale(Xv, "X_val")
    seen = y if yv is None else np.concatenate([y, yv])
    if classes is None:
        est.classes_ = np.unique(seen)
    else:
        cl = column_or_1d(np.asarray(classes))
        est.classes_ = np.unique(cl)
        if len(est.classes_) != len(cl):
            raise ValueError("classes holds a label twice: pass each class once")
    yi = encode_labels(est, y, "y")
    return X, yi, Xv, None if yv is None else encode_labels(est, yv, "y_val")


def _validation(est, X_val, y_val):
    if (X_val is None) != (y_val is None):
        raise ValueError("pass X_val and y_val together, or neither")
    if X_val is None or (len(X_val) == 0 and len(y_val) == 0):
        return None, None
    Xv = validate_data(est, X_val, reset=False, dtype=np.float32)
    yv = _labels(y_val, "y_val")
    check_consistent_length(Xv, yv)
    return Xv, yv


FEATURE_RMS = (1e-6, 1e6)
"""The range of a split's root-mean-square feature value where every head works as
tuned. Measured on planted 4-class features scaled by 1e-12..1e18: every head is
within 0.05 of its unscaled accuracy from 1e-6 to 1e6; the linear probes degrade at
1e-9 and 1e12 and fall to chance at 1e-12; at 1e18 float32 overflows and every
head is at chance. Outside it ``lteval rank`` warns (random-init controls often
are: a random MobileNetV2's features have RMS 4e-9)."""

FEATURE_RMS_LIMIT = (1e-15, 1e15)
"""Outside this range features are refused: float32 squares under- or overflow, and
the heads and DLSA fit to chance (``X * 1e20``: DLSA at chance, with only numpy's
overflow warning)."""


def feature_rms(X: np.ndarray, rows: int = 4096) -> float:
    """The root-mean-square value of ``X`` (summed in float64, so that it cannot
    overflow, ``rows`` rows at a time, so that it never copies all of ``X``)."""
    if not X.size:
        return 1.0
    total = sum(
        float(np.square(X[i : i + rows], dtype=np.float64).sum()) for i in range(0, len(X), rows)
    )
    return float(np.sqrt(total / X.size))


def check_scale(X: np.ndarray, name: str = "X") -> None:
    """ValueError when the features' root mean square is outside
    ``FEATURE_RMS_LIMIT`` (all-zero features, RMS 0, are left to the estimator)."""
    rms = feature_rms(X)
    lo, hi = FEATURE_RMS_LIMIT
    if rms > hi or 0 < rms < lo:
        raise ValueError(
            f"{name} has a root mean square of {rms:.3g}, outside {lo:g}..{hi:g}, where "
            "float32 arithmetic under- or overflows and every head fits to chance; divide "
            "it by a constant first (e.g. sklearn.preprocessing.StandardScaler)"
        )


def _labels(y, name: str) -> np.ndarray:
    """``y`` as a 1-D array of class labels (ValueError for continuous targets, or for
    labels that mix strings with numbers)."""
    y = column_or_1d(y, warn=True)
    if y.dtype == object:
        kinds = {type(v).__name__ for v in y[:100_000]}
        if len({k for k in kinds if k in ("str", "bytes")}) and len(kinds) > 1:
            raise ValueError(
                f"{name} mixes {' and '.join(sorted(kinds))} labels; give every label "
                "as one kind (all strings, or all integers)"
            )
    with warnings.catch_warnings():  # many classes over few samples is not a regression
        warnings.filterwarnings("ignore", "The number of unique classes", UserWarning)
        try:
            check_classification_targets(y)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
    return y


def encode_labels(est, y, name: str = "y") -> np.ndarray:
    """Indices (N,) into ``est.classes_`` of labels ``y``; ValueError naming the labels
    that are not classes."""
    y = np.asarray(y)
    classes = est.classes_
    try:
        idx = np.searchsorted(classes, y)
    except TypeError as e:  # e.g. string labels against integer classes
        raise ValueError(f"{name} labels are not of the kind of classes_ ({classes.dtype})") from e
    idx = np.minimum(idx, len(classes) - 1)
    bad = classes[idx] != y
    if np.any(bad):
        unknown = np.unique(y[bad])
        raise ValueError(
            f"{name} holds labels that are not classes: {unknown[:5].tolist()} "
            f"(classes: {classes[:5].tolist()}{'...' if len(classes) > 5 else ''}); "
            "pass every class in classes="
        )
    return idx.astype(np.int64)


def check_features(est, X) -> np.ndarray:
    """Features (N, D) for a fitted ``est``: float32, finite, ``n_features_in_`` wide."""
    return validate_data(est, X, reset=False, dtype=np.float32)


def carve_validation(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask (N,) of labels ``y`` held out as a head's own validation:
    ``lteval.data.per_class_holdout`` with ``fraction`` in (0, 1), its generator
    derived from ``seed``. ValueError when no sample can be held out."""
    if not isinstance(fraction, float | int) or isinstance(fraction, bool) or not 0 < fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {fraction!r}")
    out = per_class_holdout(y, fraction, derived_rng(seed, "validation"))
    if not out.any():
        raise ValueError(
            f"no validation sample can be held out of {len(y)} training samples at "
            f"validation_fraction = {fraction}: pass X_val and y_val"
        )
    return out
