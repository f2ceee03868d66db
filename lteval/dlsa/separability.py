"""Head/tail separability of log p(x): the numbers that rank backbones.

Headline score (in [0, 1], higher = head and tail more separable)::

    S = (1 / S_n) * sum_s | D_s |

over the stages s = 1..S_n that ran, where D_s is Somers' D of the stage's
log p(x) against the training frequency n_y of each sample's class, over the
eval samples still active at stage s::

    D_s = (concordant - discordant) / (pairs with n_{y_i} != n_{y_j})

A pair is concordant when the sample of the more frequent class has the higher
log p(x). D_s = 2 * AUC_s - 1 where AUC_s generalises the head-vs-tail AUROC to
every pair of classes of different frequency, so no shot thresholds are needed.
The absolute value makes S direction-agnostic: it does not assume the filter
keeps head classes (with q = 2 the likelihood favours tail anchors, so the
direction is an empirical question per backbone; the signed D_s is reported).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau
from sklearn.metrics import roc_auc_score


def _finite(scores: np.ndarray) -> np.ndarray:
    """NaN and -inf become just below the lowest finite score, +inf just above the highest."""
    s = np.asarray(scores, dtype=float)
    ok = np.isfinite(s)
    if ok.all() or not ok.any():
        return np.nan_to_num(s)
    lo, hi = s[ok].min(), s[ok].max()
    return np.where(np.isposinf(s), hi + 1, np.where(ok, s, lo - 1))


def somers_d(scores: np.ndarray, freq: np.ndarray) -> float:
    """Somers' D of ``scores`` given ``freq`` over pairs of different ``freq``.

    O(n log n) via Kendall's tau-b: with n0 pairs, n1 of them tied in ``freq`` and
    n2 tied in ``scores``, ``P - Q = tau_b * sqrt((n0 - n1)(n0 - n2))``, so
    ``D = (P - Q) / (n0 - n1)``. NaN when fewer than two frequency levels.
    """
    scores, freq = _finite(scores), np.asarray(freq)
    if len(np.unique(freq)) < 2:
        return float("nan")
    n0 = len(freq) * (len(freq) - 1) / 2

    def tied(v: np.ndarray) -> float:
        c = np.unique(v, return_counts=True)[1].astype(float)
        return float((c * (c - 1) / 2).sum())

    n1, n2 = tied(freq), tied(scores)
    if n2 == n0:  # every score equal: no pair is concordant or discordant
        return 0.0
    tau = kendalltau(freq, scores).statistic
    return float(tau * np.sqrt((n0 - n1) * (n0 - n2)) / (n0 - n1))


def many_few_auroc(scores: np.ndarray, groups: np.ndarray) -> float:
    """AUROC of ``scores`` for many-shot (positive) vs few-shot samples; NaN if either is absent."""
    m = (groups == "many") | (groups == "few")
    if len(np.unique(groups[m])) < 2:
        return float("nan")
    return float(roc_auc_score(groups[m] == "many", _finite(scores)[m]))


def imbalance(labels: np.ndarray, num_classes: int) -> dict[str, float]:
    """Imbalance of a label multiset: max/min count over the classes present,
    normalised entropy over all ``num_classes`` (1 = balanced), classes present."""
    counts = np.bincount(labels, minlength=num_classes)
    present = counts[counts > 0]
    if len(present) == 0:
        return {"imbalance_ratio": float("nan"), "norm_entropy": float("nan"), "classes": 0}
    p = present / present.sum()
    ent = float(-(p * np.log(p)).sum() / np.log(num_classes)) if num_classes > 1 else 1.0
    return {
        "imbalance_ratio": float(present.max() / present.min()),
        "norm_entropy": ent,
        "classes": int(len(present)),
    }


def separability_score(stage_d: list[float]) -> float:
    """Mean of |D_s| over the stages with a defined D_s (NaN if none)."""
    vals = [abs(d) for d in stage_d if np.isfinite(d)]
    return float(np.mean(vals)) if vals else float("nan")
