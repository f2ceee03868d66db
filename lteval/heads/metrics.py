"""Long-tailed accuracy metrics: overall, balanced, many/medium/few, per class."""

from __future__ import annotations

import numpy as np

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
    """Mean per-class recall over the classes present in ``y_true`` (NaN if empty)."""
    y_true = np.asarray(y_true)
    if len(y_true) == 0:
        return float("nan")
    classes = np.unique(y_true)
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in classes]))
