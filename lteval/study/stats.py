"""Does a score predict accuracy across feature sets? lteval's validation study.

How transferability scores such as LogME are judged: over a panel of feature sets
on one dataset, the rank correlation between a score and the accuracy reached on
the target task. Pure array code over the panel's result rows.

- **Ground truth** of a feature set: the eval accuracy (few-shot, balanced) of the
  method with the best *validation* balanced accuracy among DLSA, the
  Balanced-Softmax probe and every baseline head (never chosen on eval).
  Beside it, the Balanced-Softmax probe's few-shot accuracy (``probe_few``): the
  same head for every feature set.
- **Weighted Kendall tau** with hyperbolic weights (``scipy.stats.weightedtau``
  defaults: weight ``1 / (r + 1)`` at rank r, averaged over ranking by the score
  and by the accuracy), as in the transferability literature: disagreements among
  the top feature sets count most. Plain Kendall tau-b beside it.
- **Pooled**: the mean over datasets of the per-dataset value (accuracies of
  different datasets are not on one scale, so feature sets are never ranked across
  datasets).
- **Intervals**: a seeded bootstrap over feature sets, resampled within each
  dataset; percentile intervals.

A score that is NaN for a feature set (for example separability_z when no stage
ran) ranks below every finite value.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import kendalltau, weightedtau

from lteval.dlsa.separability import finite_scores
from lteval.heads import CLOSED_FORM
from lteval.rank.bootstrap import percentile_interval
from lteval.rank.scoring import best_on_validation
from lteval.seeds import derived_rng

SCORES = [
    "separability",
    "separability_signed",
    "separability_z",
    "balance_gain",
    "filtered_balance",
    "cluster_coverage",
    "logme",
    *CLOSED_FORM,
    "ncm_val_balanced",
    "knn_val_balanced",
    "feature_dim",
    "num_params",
]
"""Scores compared: lteval's, LogME, the closed-form baselines (docs/method.md), two
cheap validation accuracies, and the naive baselines a user reaches for without
lteval (feature dimension, parameter count)."""
NAIVE = ("feature_dim", "num_params")
GOAL = 0.6
"""lteval's goal for the default score: pooled weighted tau against few-shot accuracy."""
TRUTHS = ["truth_few", "truth_balanced", "probe_few"]
"""Ground truths: the best-on-validation method's few-shot and balanced accuracy
(the study's), and the Balanced-Softmax probe's few-shot accuracy (one fixed head
for every feature set: no noise from choosing the head on a small validation split)."""


def ground_truth(row: dict, methods: list[str]) -> dict:
    """The best method on validation balanced accuracy, and its eval accuracies."""
    best = best_on_validation(row, methods)  # ties: the earlier method
    if best is None:
        raise ValueError(f"{row.get('member')}: no method has a validation accuracy")
    return {
        "truth_method": best,
        "truth_few": row[f"{best}_few"],
        "truth_balanced": row[f"{best}_balanced"],
    }


def taus(score: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(weighted tau, plain tau-b) of ``score`` against ``truth``, both (n,); NaN when
    either is constant or n < 3."""
    s, t = finite_scores(score), np.asarray(truth, dtype=float)
    if len(s) < 3 or np.ptp(s) == 0 or np.ptp(t) == 0:
        return float("nan"), float("nan")
    return float(weightedtau(s, t).statistic), float(kendalltau(s, t).statistic)


def resamples(rows: list[dict], n_boot: int, seed: int) -> tuple[list, dict, dict]:
    """(datasets, {dataset: its rows}, {dataset: (n_boot, n) resampled row indices}):
    one shared set of resamples per dataset, so every score (and every statistic of
    ``lteval.study.ceiling``) sees the same replicates."""
    datasets = sorted({r["dataset"] for r in rows})
    by_ds = {d: [r for r in rows if r["dataset"] == d] for d in datasets}
    rng = derived_rng(seed, "study-bootstrap")
    idx = {d: rng.integers(0, len(by_ds[d]), (n_boot, len(by_ds[d]))) for d in datasets}
    return datasets, by_ds, idx


def with_pooled(point: dict, reps: dict, datasets: list) -> list[tuple]:
    """``[(dataset, point, replicates)]`` for each of ``datasets``, then ``("pooled",
    ...)``: their mean, NaN where no dataset defines it (a constant score)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pooled = (
            np.nanmean([point[d] for d in datasets], axis=0),
            np.nanmean(np.stack([reps[d] for d in datasets]), axis=0),
        )
    return [*((d, point[d], reps[d]) for d in datasets), ("pooled", *pooled)]


def correlations(
    rows: list[dict],
    scores: list[str] = SCORES,
    truths: list[str] = TRUTHS,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> list[dict]:
    """Per dataset and pooled, each score's weighted and plain tau against each truth.

    ``rows``: one dict per feature set with ``dataset``, the ``scores`` and the
    ``truths``. Returns dicts ``{"dataset" ("pooled" for the mean over datasets),
    "score", "truth", "weighted_tau", "weighted_lo", "weighted_hi", "tau", "tau_lo",
    "tau_hi", "n"}``.
    """
    datasets, by_ds, idx = resamples(rows, n_boot, seed)
    out = []
    for truth in truths:
        for score in scores:
            point, reps = {}, {}
            for d in datasets:
                s = np.array([r.get(score, np.nan) for r in by_ds[d]], dtype=float)
                t = np.array([r[truth] for r in by_ds[d]], dtype=float)
                point[d] = taus(s, t)
                reps[d] = np.array([taus(s[i], t[i]) for i in idx[d]]).reshape(n_boot, 2)
            for d, p, r in with_pooled(point, reps, datasets):
                n = len(rows) if d == "pooled" else len(by_ds[d])
                wlo, whi = percentile_interval(r[:, 0], level)
                tlo, thi = percentile_interval(r[:, 1], level)
                out.append(
                    {
                        "dataset": d,
                        "score": score,
                        "truth": truth,
                        "weighted_tau": float(p[0]),
                        "weighted_lo": wlo,
                        "weighted_hi": whi,
                        "tau": float(p[1]),
                        "tau_lo": tlo,
                        "tau_hi": thi,
                        "n": n,
                    }
                )
    return out


def shown_gap(a: float, b: float) -> str:
    """``|a - b|`` as the difference of the two values shown to 2 decimals, so that a
    reader's arithmetic on the printed numbers agrees with the printed gap; to 3
    decimals when both print the same (never "by 0.00")."""
    gap = abs(round(a, 2) - round(b, 2))
    return f"{gap:.2f}" if round(gap, 2) > 0 else f"{abs(a - b):.3f}"


def pooled(corr: list[dict], truth: str = "truth_few") -> dict[str, dict]:
    """``{score: its pooled correlation row against truth}`` from ``correlations()``."""
    return {c["score"]: c for c in corr if c["dataset"] == "pooled" and c["truth"] == truth}


def verdicts(corr: list[dict], truth: str = "truth_few", goal: float = GOAL) -> dict[str, str]:
    """One line per score on its pooled weighted tau against ``truth``: whether it
    predicts accuracy at all, and how it stands against LogME and the best naive
    baseline."""
    by_score = pooled(corr, truth)
    logme = by_score.get("logme", {}).get("weighted_tau", np.nan)
    naive = max((by_score[k]["weighted_tau"] for k in NAIVE if k in by_score), default=np.nan)
    out = {}
    for score, c in by_score.items():
        w, lo, hi = c["weighted_tau"], c["weighted_lo"], c["weighted_hi"]
        head = f"weighted tau {w:.2f} [{lo:.2f}, {hi:.2f}]"
        if not np.isfinite(w):
            out[score] = f"{head}: undefined on this panel"
            continue
        if lo > 0:
            sign = "predicts accuracy"
        elif hi < 0:
            sign = "ranks feature sets backwards"
        else:
            sign = "no evidence that it predicts accuracy (interval includes 0)"
        parts = [sign, "meets" if w >= goal else f"{shown_gap(goal, w)} below", f"the {goal} goal"]
        text = f"{head}: {parts[0]}; {parts[1]} {parts[2]}"
        if score != "logme" and np.isfinite(logme):
            side = "above" if w > logme else "below"
            text += f"; {side} LogME ({logme:.2f}) by {shown_gap(w, logme)}"
        if score not in NAIVE and np.isfinite(naive):
            text += f"; {'above' if w > naive else 'below'} the best naive baseline ({naive:.2f})"
        out[score] = text
    return out


TRUTH_WORDS = {
    "truth_few": "few-shot accuracy",
    "truth_balanced": "balanced accuracy",
    "probe_few": "the probe's few-shot accuracy",
}

OTHER_SCORES = ("logme", *CLOSED_FORM, "ncm_val_balanced", "knn_val_balanced", *NAIVE)
DLSA_SCORES = tuple(s for s in SCORES if s not in OTHER_SCORES)
"""The DLSA-derived scores among ``SCORES``: all but LogME, the closed-form
baselines, the validation accuracies and the naive baselines."""


def answer(corr: list[dict], truth: str = "truth_few", goal: float = GOAL) -> str:
    """One sentence on a panel's pooled weighted tau against ``truth``: does
    separability order the feature sets by it, against LogME and NCM, and how far
    the best DLSA-derived score is from ``goal`` and the other scores."""
    by_score = pooled(corr, truth)

    def w(score: str) -> float:
        return by_score.get(score, {}).get("weighted_tau", np.nan)

    sep = by_score.get("separability")
    if not sep or not np.isfinite(sep["weighted_tau"]):
        return "Separability is undefined on this panel."
    lo, hi = sep["weighted_lo"], sep["weighted_hi"]
    order = (
        "has no interval (no bootstrap), so no verdict on its ordering"
        if not (np.isfinite(lo) and np.isfinite(hi))
        else "orders the feature sets by their tail accuracy"
        if lo > 0
        else "orders them backwards"
        if hi < 0
        else "shows no evidence of ordering them by their tail accuracy (interval includes 0)"
    )
    bounds = f" [{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) and np.isfinite(hi) else ""
    others = [(name, w(key)) for name, key in (("LogME", "logme"), ("NCM", "ncm_val_balanced"))]
    sides = [
        f"{'above' if sep['weighted_tau'] > v else 'below'} {n} ({v:.2f})"
        for n, v in others
        if np.isfinite(v)
    ] or ["with neither LogME nor NCM defined"]
    scored = {s: w(s) for s in DLSA_SCORES if np.isfinite(w(s))}
    best = max(scored, key=scored.get)
    rival_scores = ("logme", *CLOSED_FORM, "ncm_val_balanced", *NAIVE)
    rivals = {s: w(s) for s in rival_scores if np.isfinite(w(s))}
    top_rival = max(rivals, key=rivals.get) if rivals else None
    verdict = "meets" if scored[best] >= goal else f"is {shown_gap(goal, scored[best])} short of"
    gap = rivals[top_rival] - scored[best] if top_rival else np.nan
    beat = (
        "has no rival score defined"
        if top_rival is None
        else f"beats every other score (best: {top_rival} {rivals[top_rival]:.2f})"
        if gap < 0
        else f"trails {top_rival} ({rivals[top_rival]:.2f}) by "
        f"{shown_gap(rivals[top_rival], scored[best])}"
    )
    return (
        f"Separability's pooled weighted tau against {TRUTH_WORDS.get(truth, truth)} is "
        f"{sep['weighted_tau']:.2f}{bounds}: it {order}, "
        f"{' and '.join(sides)}. The DLSA-derived score with the highest tau "
        f"(picked after the fact among {len(scored)}), {best} "
        f"({scored[best]:.2f}), {verdict} the {goal} goal and {beat}."
    )
