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

S alone does not say whether a value is more than chance: with C classes, D_s is
a statistic over C class frequencies, and a density that differs between classes
for any reason gives |D_s| > 0. The companion scores:

- ``separability_z`` / ``separability_p``: each stage's D_s against a permutation
  null that shuffles which train frequency belongs to which class (samples stay
  with their class, log p(x) is unchanged, nothing is refit),
  ``z_s = (D_s - mean(D_null)) / sd(D_null)``; stages combine by Stouffer,
  ``Z = sum_s z_s / sqrt(S_n)``, with two-sided ``p = 2 (1 - Phi(|Z|))``.
- ``balance_gain``: ``sum_s [H(remaining_s) - H(active_s)]`` over the train labels,
  H the entropy of the class distribution divided by log C (1 = balanced). It
  telescopes to H(left after the last stage) - H(train): positive only when the
  filtering leaves a more balanced label space, which is what DLSA claims to do.
- ``cluster_coverage``: mean over stages of the share of active eval samples whose
  flow cluster was kept on train (purity > 0.7 and more than 10 active train
  samples); ``cluster_eval_purity``: the share of those covered eval samples whose
  label is their cluster's train majority, pooled over stages.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau, norm
from sklearn.metrics import roc_auc_score


def finite_scores(scores: np.ndarray) -> np.ndarray:
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
    scores, freq = finite_scores(scores), np.asarray(freq)
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
    return float(roc_auc_score(groups[m] == "many", finite_scores(scores)[m]))


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


def class_pair_margins(scores: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) ``M[a, b] = #(s_i > s_j) - #(s_i < s_j)`` over samples i of class a and
    j of class b: everything Somers' D needs once the scores are fixed, whatever
    frequency each class is given. O(C' n log n) for C' classes present."""
    s, y = finite_scores(scores), np.asarray(y)
    M = np.zeros((num_classes, num_classes))
    for b in np.unique(y):
        sb = np.sort(s[y == b])
        diff = np.searchsorted(sb, s, "left") - (len(sb) - np.searchsorted(sb, s, "right"))
        M[:, b] = np.bincount(y, weights=diff, minlength=num_classes)
    return M


def somers_d_from_margins(M: np.ndarray, class_n: np.ndarray, class_freq: np.ndarray) -> float:
    """Somers' D of the scores behind ``M`` (see ``class_pair_margins``) against the
    class frequencies ``class_freq`` (C,), with ``class_n`` (C,) samples per class.
    Equals ``somers_d(scores, class_freq[y])``; NaN with no pair of different frequency."""
    more = class_freq[:, None] > class_freq[None, :]
    pairs = (np.outer(class_n, class_n) * more).sum()
    return float((M * more).sum() / pairs) if pairs > 0 else float("nan")


def permutation_null(
    scores: np.ndarray,
    y: np.ndarray,
    class_freq: np.ndarray,
    n_permutations: int,
    rng: np.random.Generator,
) -> dict[str, float]:
    """Somers' D of ``scores`` against the frequency of each sample's class, and its
    null: the same D with the frequencies shuffled among the classes (samples stay
    with their class, the scores are unchanged, nothing is refit).

    Returns ``{"d", "null_mean", "null_sd", "z"}`` with ``z = (d - null_mean) /
    null_sd`` (NaN when the null has no spread or D is undefined).
    """
    y = np.asarray(y)
    C = len(class_freq)
    M = class_pair_margins(scores, y, C)
    n = np.bincount(y, minlength=C)
    d = somers_d_from_margins(M, n, class_freq)
    null = np.array(
        [somers_d_from_margins(M, n, class_freq[rng.permutation(C)]) for _ in range(n_permutations)]
    )
    null = null[np.isfinite(null)]
    mean = float(null.mean()) if len(null) else float("nan")
    sd = float(null.std(ddof=1)) if len(null) > 1 else float("nan")
    z = (d - mean) / sd if np.isfinite(d) and sd > 0 else float("nan")
    return {"d": d, "null_mean": mean, "null_sd": sd, "z": float(z)}


def stouffer(z: list[float]) -> tuple[float, float]:
    """Stouffer's combination of per-stage z-scores: (Z = sum z / sqrt(k), two-sided p),
    over the finite ones (NaN, NaN if none)."""
    z = np.asarray([v for v in z if np.isfinite(v)], dtype=float)
    if not len(z):
        return float("nan"), float("nan")
    Z = float(z.sum() / np.sqrt(len(z)))
    return Z, float(2 * norm.sf(abs(Z)))
