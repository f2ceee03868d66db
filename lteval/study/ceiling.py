"""What a score's tau can be compared with: the truth's noise ceiling, the score's
own test-retest, and its tau with model size partialled out.

- **Replicate tau** (the ceiling): per dataset and pooled, the weighted tau between
  the truth of the first run on eval half A and the truth of the replicate run (every
  estimator refitted under another ``random_state``) on half B
  (``lteval.study.replicate``). Each score's tau against the truth is reported
  beside it, and as a fraction of it (``fraction_of_replicate``).
- **Test-retest** of a score: its weighted tau against its own value in the
  replicate run, and the largest move between the two runs.
- **Size-controlled tau**: the parameter count partialled out of score and truth
  (not a within-architecture tau: the lt-methods panel has one architecture, the
  default panel mixes five): Kendall's tau-b of the two rank residuals left after a
  least-squares line on the rank of the parameter count, on every dataset where the
  members differ in size (NaN elsewhere); pooled as the mean, with the study's
  bootstrap interval.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau, rankdata

from lteval.dlsa.separability import finite_scores
from lteval.rank.bootstrap import percentile_interval
from lteval.study.replicate import REPLICATED
from lteval.study.stats import correlations, resamples, with_pooled


def replicate_taus(rows: list[dict], *, n_boot: int, seed: int) -> list[dict]:
    """Per dataset and pooled, the truth's weighted tau (and tau-b) against its
    replicate, for ``truth_few`` and ``truth_balanced``; rows as ``correlations``'
    with ``truth`` the truth replicated and ``score`` "replicate"."""
    out = []
    for k in REPLICATED:
        for c in correlations(rows, [f"truth_{k}_a"], [f"truth_{k}_b"], n_boot=n_boot, seed=seed):
            out.append({**c, "score": "replicate", "truth": f"truth_{k}"})
    return out


def retest_taus(rows: list[dict], scores: list[str], *, n_boot: int, seed: int) -> list[dict]:
    """Per score, dataset and pooled: the weighted tau of the score against its own
    replicate value, and ``largest_move`` (max |score - replicate| over the sets)."""
    out = []
    for s in scores:
        for c in correlations(rows, [s], [f"retest_{s}"], n_boot=n_boot, seed=seed):
            sub = [r for r in rows if c["dataset"] in ("pooled", r["dataset"])]
            moves = [abs(r.get(s, np.nan) - r.get(f"retest_{s}", np.nan)) for r in sub]
            finite = [m for m in moves if np.isfinite(m)]
            out.append({**c, "truth": "retest", "largest_move": max(finite, default=np.nan)})
    return out


def with_fractions(corr: list[dict], replicate: list[dict]) -> list[dict]:
    """``corr`` with ``fraction_of_replicate`` (a score's weighted tau over the
    replicate tau of its dataset and truth; NaN where that is not positive) and
    ``replicate_tau`` added to each row."""
    ceiling = {(r["dataset"], r["truth"]): r["weighted_tau"] for r in replicate}
    out = []
    for c in corr:
        top = ceiling.get((c["dataset"], c["truth"]), np.nan)
        frac = c["weighted_tau"] / top if np.isfinite(top) and top > 0 else np.nan
        out.append({**c, "replicate_tau": top, "fraction_of_replicate": frac})
    return out


def _residual_ranks(v: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The ranks of v minus their least-squares line on the ranks of z."""
    rv, rz = rankdata(v), rankdata(z)
    slope, intercept = np.polyfit(rz, rv, 1)
    return rv - (slope * rz + intercept)


def partial_tau(s: np.ndarray, t: np.ndarray, z: np.ndarray) -> float:
    """Kendall's tau-b of s and t, each (n,), after the ranks of each are freed of
    what the ranks of z explain linearly (rank residuals); NaN when undefined.
    Kendall's own partial tau is not used: it stays far from 0 when s and t each
    follow z and nothing else."""
    s, t, z = finite_scores(s), np.asarray(t, float), np.asarray(z, float)
    if len(s) < 3 or min(np.ptp(s), np.ptp(t), np.ptp(z)) == 0:
        return float("nan")
    rs, rt = _residual_ranks(s, z), _residual_ranks(t, z)
    if min(np.ptp(rs), np.ptp(rt)) < 1e-9:
        return float("nan")
    return float(kendalltau(rs, rt).statistic)


def size_controlled(
    rows: list[dict],
    scores: list[str],
    truths: list[str],
    *,
    n_boot: int,
    seed: int,
    level: float = 0.95,
    size: str = "num_params",
) -> list[dict]:
    """Per score, truth, dataset and pooled: ``partial_tau`` given ``size``, with a
    percentile interval over the study's bootstrap resamples of feature sets."""
    datasets, by_ds, idx = resamples(rows, n_boot, seed)  # those ``correlations`` draws
    out = []
    for truth in truths:
        for score in scores:
            point, reps = {}, {}
            for d in datasets:
                col = {
                    k: np.array([r.get(k, np.nan) for r in by_ds[d]], float)
                    for k in (score, truth, size)
                }
                s, t, z = col[score], col[truth], col[size]
                point[d] = partial_tau(s, t, z)
                reps[d] = np.array([partial_tau(s[i], t[i], z[i]) for i in idx[d]])
            for d, p, r in with_pooled(point, reps, datasets):
                lo, hi = percentile_interval(r, level)
                out.append(
                    {
                        "dataset": d,
                        "score": score,
                        "truth": truth,
                        "partial_tau": float(p),
                        "partial_lo": lo,
                        "partial_hi": hi,
                        "controls": size,
                    }
                )
    return out
