"""Is the ranking real? Seeded bootstrap intervals, ties, and rank correlations.

One bootstrap replicate resamples the eval split *within each class* (with
replacement, class sizes kept, so a balanced eval split stays balanced) and
recomputes, for every backbone on the same resampled indices (a paired bootstrap):

- every accuracy column ``{method}_{overall|balanced|many|medium|few}`` from the
  stored predictions (the models are not refitted: these intervals cover the
  evaluation noise, not the classifiers' training noise);
- the separability score from the stored per-stage log p(x) of each of the R flows
  and the routing: each replicate also resamples the R flows of every backbone
  with replacement (independently per backbone: their flows were trained apart)
  and recomputes the ensemble density, log of the mean density of the drawn
  flows, so separability's intervals, ties and correlations cover the flows'
  training noise too (with R = 1 nothing changes);
- ``lift_balanced``.

The stages' active sets are held at the fitted routing; the flow draws come from
their own seeded stream, so the eval resampling is the same for every R.

Intervals are percentile intervals (default 95%). Two backbones *tie* on the
ranking metric when the percentile interval of their paired difference contains
0. Kendall's tau-b and Spearman's rho between the separability score and each
accuracy column are computed across backbones, on the full eval split and per
replicate, giving their intervals. LogME uses the train split only and gets none.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from scipy.stats import rankdata

from lteval.dlsa import separability_score, somers_d
from lteval.dlsa.flow import ensemble_log_density
from lteval.heads import accuracy_report
from lteval.rank.schema import ACCURACY_KEYS
from lteval.rank.scoring import BackboneScore
from lteval.seeds import derived_rng

PICK_METRIC = "pick_few"
"""The tail accuracy of the head chosen on validation: "which backbone for my tail"."""

BOOTSTRAP_MIN = 40
"""The fewest bootstrap replicates (other than 0, none): a 95% percentile interval
takes its ends from the 2.5% and 97.5% quantiles, which need at least 40."""


def _metrics(a, idx: np.ndarray, flows: np.ndarray | None = None) -> dict[str, float]:
    """Every bootstrapped metric of one backbone's ``EvalArrays`` on eval rows ``idx``,
    with its ensemble made of the flows ``flows`` (R,) (default: each flow once)."""
    y = a.y[idx]
    out = {}
    for m, p in a.preds.items():
        acc = accuracy_report(y, p[idx], a.group_counts)
        out.update({f"{m}_{k}": acc[k] for k in ACCURACY_KEYS})
    if "dlsa_balanced" in out and "probe_balanced" in out:
        out["lift_balanced"] = out["dlsa_balanced"] - out["probe_balanced"]
    freq = a.class_counts[y]
    ds = []
    for member_lp, act in zip(a.stage_scores, a.stage_active, strict=True):
        member_lp = np.atleast_2d(member_lp)  # (N,): one flow
        m = member_lp[:, idx] if flows is None else member_lp[flows][:, idx]
        lp = ensemble_log_density(torch.from_numpy(m)).numpy()  # as DLSA computes it
        ds.append(somers_d(lp[act[idx]], freq[act[idx]]))
    out["separability"] = separability_score(ds)
    return out


def _resample(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of one stratified bootstrap replicate (each class resampled to its size)."""
    parts = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        parts.append(rng.choice(members, size=len(members), replace=True))
    return np.concatenate(parts)


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b along the last axis of (..., k) arrays (NaN where undefined)."""
    sx = np.sign(x[..., :, None] - x[..., None, :])
    sy = np.sign(y[..., :, None] - y[..., None, :])
    den = np.sqrt((sx * sx).sum((-1, -2)) * (sy * sy).sum((-1, -2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (sx * sy).sum((-1, -2)) / np.where(den > 0, den, 1), np.nan)


def spearman_rho(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho (Pearson on average ranks) along the last axis of (..., k) arrays."""
    rx = rankdata(x, axis=-1) - (x.shape[-1] + 1) / 2
    ry = rankdata(y, axis=-1) - (y.shape[-1] + 1) / 2
    den = np.sqrt((rx * rx).sum(-1) * (ry * ry).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry).sum(-1) / np.where(den > 0, den, 1), np.nan)


def percentile_interval(v: np.ndarray, level: float) -> tuple[float, float]:
    v = v[np.isfinite(v)]
    if not len(v):
        return float("nan"), float("nan")
    lo, hi = np.percentile(v, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def validate_ranking(
    scores: list[BackboneScore],
    by: str,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    resample_flows: bool = True,
) -> dict:
    """Bootstrap the scored backbones (failed ones are skipped) on their shared eval split.

    Returns ``{"n_boot", "level", "seed", "intervals": {backbone: {metric: [lo, hi]}},
    "pairs": [{"a", "b", "metric", "difference", "lo", "hi", "tie"}],
    "correlations": [{"metric", "kendall_tau", "kendall_lo", "kendall_hi",
    "spearman_rho", "spearman_lo", "spearman_hi", "n_backbones"}]}``.
    Pairs are given for ``by`` when it is bootstrapped (not for LogME), and as
    ``pick_pairs`` for ``pick_few`` (the tail accuracy of each backbone's head chosen
    on validation: what the report's "what to pick" block reads).
    ``resample_flows=False`` keeps every flow in every replicate (the eval split's
    noise alone; ``make benchmark-stability`` compares the two).
    """
    ok = [s for s in scores if s.ok and s.arrays is not None]
    out = {"n_boot": n_boot, "level": level, "seed": seed, "intervals": {}, "pairs": []}
    out["pick_pairs"] = []
    out["correlations"] = []
    if not ok or n_boot < 1:
        return out
    y = ok[0].arrays.y
    for s in ok[1:]:
        if not np.array_equal(s.arrays.y, y):
            raise ValueError(
                f"{s.row['backbone']} was scored on different eval samples than "
                f"{ok[0].row['backbone']}: a paired bootstrap needs one shared eval split"
            )
    names = [s.row["backbone"] for s in ok]
    full = [_metrics(s.arrays, np.arange(len(y))) for s in ok]
    keys = list(full[0])
    rng = derived_rng(seed, "bootstrap", "samples")
    flow_rng = derived_rng(seed, "bootstrap", "flows")  # idx does not depend on R
    reps = np.full((n_boot, len(ok), len(keys)), np.nan)
    for b in range(n_boot):
        idx = _resample(y, rng)
        for i, s in enumerate(ok):
            R = s.arrays.flows
            draw = flow_rng.integers(0, R, R)  # drawn even when unused: one stream
            m = _metrics(s.arrays, idx, draw if resample_flows else None)
            reps[b, i] = [m.get(k, np.nan) for k in keys]
    for i, n in enumerate(names):
        out["intervals"][n] = {
            k: list(percentile_interval(reps[:, i, j], level)) for j, k in enumerate(keys)
        }
    for key, metric in (("pairs", by), ("pick_pairs", PICK_METRIC)):
        if metric not in keys:
            continue
        j = keys.index(metric)
        for i1, i2 in itertools.combinations(range(len(ok)), 2):
            diff = reps[:, i1, j] - reps[:, i2, j]
            lo, hi = percentile_interval(diff, level)
            out[key].append(
                {
                    "a": names[i1],
                    "b": names[i2],
                    "metric": metric,
                    "difference": full[i1][metric] - full[i2][metric],
                    "lo": lo,
                    "hi": hi,
                    "tie": bool(not np.isfinite(lo) or lo <= 0 <= hi),
                }
            )
    if len(ok) >= 3:
        js = keys.index("separability")
        sep_full = np.array([f["separability"] for f in full])
        for k in keys:
            if k in ("separability", "lift_balanced") or not k.endswith(ACCURACY_KEYS):
                continue
            j = keys.index(k)
            acc_full = np.array([f[k] for f in full])
            tau_r = kendall_tau_b(reps[:, :, js], reps[:, :, j])
            rho_r = spearman_rho(reps[:, :, js], reps[:, :, j])
            t_lo, t_hi = percentile_interval(tau_r, level)
            r_lo, r_hi = percentile_interval(rho_r, level)
            out["correlations"].append(
                {
                    "metric": k,
                    "kendall_tau": float(kendall_tau_b(sep_full, acc_full)),
                    "kendall_lo": t_lo,
                    "kendall_hi": t_hi,
                    "spearman_rho": float(spearman_rho(sep_full, acc_full)),
                    "spearman_lo": r_lo,
                    "spearman_hi": r_hi,
                    "n_backbones": len(ok),
                }
            )
    return out


def tied_with(pairs: list[dict]) -> dict[str, list[str]]:
    """backbone -> the backbones it ties with on the ranking metric."""
    out: dict[str, list[str]] = {}
    for p in pairs:
        if p["tie"]:
            out.setdefault(p["a"], []).append(p["b"])
            out.setdefault(p["b"], []).append(p["a"])
    return out
