"""Long-tailed accuracy metrics: overall, balanced, many/medium/few, per class."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import balanced_accuracy_score

MANY, FEW = 100, 20  # many-shot: > 100 train images; few-shot: < 20 (standard protocol)
GROUPS = ("many", "medium", "few")


def shot_groups(train_counts: np.ndarray, many: int = MANY, few: int = FEW) -> np.ndarray:
    """Group name ("many" / "medium" / "few") of each class, from its train count.

    The standard protocol counts the full long-tailed train set: when a validation
    split was carved from train, pass train + validation counts.
    """
    counts = np.asarray(train_counts)
    return np.where(counts > many, "many", np.where(counts < few, "few", "medium"))


def accuracy_report(
    y_true: np.ndarray, y_pred: np.ndarray, train_counts: np.ndarray
) -> dict[str, float | np.ndarray]:
    """Accuracy breakdown of predictions on an evaluation set.

    train_counts: (C,) the long-tailed train count of each class (train plus any
        carved validation split); it sets the shot groups (see ``shot_groups``).

    Returns ``overall`` (share correct), ``balanced`` (mean per-class recall over the
    classes present in ``y_true``), ``many`` / ``medium`` / ``few`` (mean per-class
    recall over the group's classes present in ``y_true``; NaN when there are none)
    and ``per_class`` ((C,) recall, NaN for classes absent from ``y_true``). All in
    [0, 1].
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    C = len(train_counts)
    correct = y_true == y_pred
    support = np.bincount(y_true, minlength=C).astype(float)
    hits = np.bincount(y_true, weights=correct, minlength=C)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(support > 0, hits / support, np.nan)
    groups = shot_groups(train_counts)
    out: dict[str, float | np.ndarray] = {
        "overall": float(correct.mean()) if len(correct) else float("nan"),
        "balanced": float(np.nanmean(per_class)) if support.any() else float("nan"),
    }
    for g in GROUPS:
        m = (groups == g) & (support > 0)
        out[g] = float(per_class[m].mean()) if m.any() else float("nan")
    out["per_class"] = per_class
    return out


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean per-class recall over the classes present in ``y_true`` (N,), of labels
    ``y_pred`` (N,); NaN if empty.

    ``sklearn.metrics.balanced_accuracy_score``, which drops the classes predicted
    but absent from ``y_true`` with a warning: here that is the documented meaning
    (a head may predict any class it was trained on), so that warning is silenced,
    as is the one for a single class in both (a small stage's validation subset).
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0:
        return float("nan")
    with warnings.catch_warnings():
        for message in _EXPECTED_WARNINGS:
            warnings.filterwarnings("ignore", message, UserWarning)
        return float(balanced_accuracy_score(y_true, y_pred))


_EXPECTED_WARNINGS = ("y_pred contains classes not in y_true", "A single label was found")


def balanced_accuracy_se(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Standard error of :func:`balanced_accuracy`: ``sqrt(sum_c p_c (1 - p_c) / n_c) / C``
    over the C classes present, with ``p_c = (hits_c + 1) / (n_c + 2)`` (add-one
    smoothing, so a class of one or two samples never counts as certain).

    Balanced accuracy weighs each class equally, so its variance is dominated by
    the rarest classes; ``sqrt(p (1 - p) / n)`` over all n samples understates it
    whenever the classes present are imbalanced. NaN if ``y_true`` is empty.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0:
        return float("nan")
    classes, n = np.unique(y_true, return_counts=True)
    hits = np.array([np.sum(y_pred[y_true == c] == c) for c in classes])
    p = (hits + 1) / (n + 2)
    return float(np.sqrt(np.sum(p * (1 - p) / n)) / len(classes))
