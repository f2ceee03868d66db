"""The study's noise ceiling, and every score's test-retest.

Each feature set is scored twice: once under the study's seed (the scores and the
truth the study has always reported) and once more, on the same features and the
same splits, under ``derive_seed(seed, "replicate")`` as every estimator's
``random_state`` (the heads, DLSA's flows, routing and classifiers: a whole refit).
The eval split is cut in two per-class halves (the stream ``"eval-halves"``): the
first run's truth is read on half A, the replicate's on half B. How well the truth
agrees with this independent replicate of itself (``replicate tau``) bounds how well
any score can agree with it. The replicate's own scores give each score's
test-retest: its tau against itself across the two refits, and its largest move.

The replicate truth is read on half the eval images, so it is noisier than the
full-eval truth the scores are judged against: the replicate tau is a conservative
ceiling (the full truth's own reliability is higher).
"""

from __future__ import annotations

import numbers

import numpy as np

from lteval.data import per_class_holdout
from lteval.heads import accuracy_report
from lteval.rank.scoring import BackboneScore, best_on_validation
from lteval.seeds import derive_seed, derived_rng

REPLICATED = ("few", "balanced")
"""The truths given a replicate: ``truth_few`` and ``truth_balanced``."""


def replicate_seed(seed: int) -> int:
    """The ``random_state`` of every estimator in the replicate run."""
    return derive_seed(seed, "replicate")


def eval_halves(y: np.ndarray, seed: int) -> np.ndarray:
    """(N,) bool: half A of the eval labels ``y`` (half of each class, rounded)."""
    return per_class_holdout(np.asarray(y), 0.5, derived_rng(seed, "eval-halves"))


def _truth_on(score: BackboneScore, methods: list[str], half: np.ndarray) -> dict:
    """The run's truth (the best method on validation balanced accuracy, as
    ``stats.ground_truth``) read on the eval samples ``half``."""
    best = best_on_validation(score.row, methods)
    a = score.arrays
    acc = accuracy_report(a.y[half], a.preds[best][half], a.group_counts)
    return {k: float(acc[k]) for k in REPLICATED} | {"method": best}


def replicate_fields(
    first: BackboneScore,
    again: BackboneScore | None,
    methods: list[str],
    scores: list[str],
    seed: int,
) -> dict:
    """A feature set's replicate columns: ``truth_few_a`` / ``truth_balanced_a``
    (the first run's truth on half A), ``truth_few_b`` / ``truth_balanced_b`` (the
    replicate's on half B), ``truth_method_b``, and ``retest_<score>`` (the
    replicate's value of each of ``scores``); NaN where the replicate failed."""
    half = eval_halves(first.arrays.y, seed)
    a = _truth_on(first, methods, half)
    out = {f"truth_{k}_a": a[k] for k in REPLICATED}
    ok = again is not None and again.ok and again.arrays is not None
    b = _truth_on(again, methods, ~half) if ok else {k: np.nan for k in REPLICATED}
    out.update({f"truth_{k}_b": b[k] for k in REPLICATED})
    out["truth_method_b"] = b.get("method")
    for s in scores:
        v = again.row.get(s) if ok else None
        real = isinstance(v, numbers.Real) and not isinstance(v, bool)
        out[f"retest_{s}"] = float(v) if real else np.nan
    return out
