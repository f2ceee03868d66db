"""Closed-form transferability scores, written from their papers' formulas.

Each takes frozen features and labels and returns one float, higher is better, with
no training loop. Formulas, citations and what lteval expects of each are in
docs/method.md ("Closed-form baselines").

- ``lda_posterior``: the shrinkage-LDA posterior, the core that SFDA (Shao et al.,
  ECCV 2022) and NCTI (Wang et al., ICCV 2023) share: LDA with a Ledoit-Wolf-shrunk
  pooled covariance and the train class frequencies as priors, read out as the mean
  posterior of each train sample's own class. (SFDA's self-challenging ConfMix step
  and NCTI's other two terms are not included.)
- ``lda_tail_posterior``: lteval's tail-aware variant: the same LDA fitted on all
  classes (the tail borrows the pooled covariance), a uniform class prior, read out
  on held-out validation samples, averaged per class over the tail classes only.
- ``gbc``: Gaussian Bhattacharyya Coefficient (Pándy et al., CVPR 2022): minus the
  sum over ordered class pairs of the Bhattacharyya coefficient between per-class
  diagonal Gaussians in a 64-d PCA space. Every class weighs the same.
- ``h_score``: the regularized H-score (Bao et al., ICIP 2019; shrinkage by Ibrahim
  et al., 2022): ``tr(Sigma_alpha^-1 (1 - alpha) Sigma_between)``.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.special import softmax
from sklearn.covariance import ledoit_wolf
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from lteval.heads.metrics import shot_groups

GBC_COMPONENTS = 64
"""GBC's PCA dimension (the paper's setting)."""
VARIANCE_FLOOR = 1e-6
"""A class's per-dimension variance in GBC is at least this share of the mean
variance of the PCA space, so a one-sample class (variance 0) stays finite."""


def _labels(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    _, y = np.unique(np.asarray(y), return_inverse=True)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"X must be (N, D) and y (N,), got {X.shape} and {y.shape}")
    if y.max(initial=0) < 1:
        raise ValueError("a transferability score needs at least 2 classes")
    return X, y


def _lda(X: np.ndarray, y: np.ndarray) -> LinearDiscriminantAnalysis:
    """LDA with scikit-learn's Ledoit-Wolf shrinkage of the pooled within-class
    covariance (classes weighted by their train frequency, which are also its priors).
    A one-image class adds nothing to the pooled covariance; scikit-learn's warning
    about it (once per such class: hundreds on ImageNet-LT) is silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Only one sample available", UserWarning)
        return LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(X, y)


def _own_posterior(lda: LinearDiscriminantAnalysis, X: np.ndarray, y: np.ndarray) -> float:
    """Mean over the rows of the posterior (train-frequency priors) of their own class."""
    proba = lda.predict_proba(X)
    return float(proba[np.arange(len(y)), np.searchsorted(lda.classes_, y)].mean())


def _tail_classes(counts: np.ndarray) -> np.ndarray:
    """The few-shot group, or the rarest third of the classes when it is empty."""
    tail = np.flatnonzero(shot_groups(counts) == "few")
    return tail if len(tail) else np.argsort(counts, kind="stable")[: max(1, len(counts) // 3)]


def _tail_posterior(lda, X_val: np.ndarray, y_val: np.ndarray, counts: np.ndarray) -> float:
    """Mean over tail classes of the mean uniform-prior posterior of the class on its
    validation rows: the fitted LDA's log-posteriors less its log priors, renormalised."""
    col = {c: i for i, c in enumerate(lda.classes_)}
    tail = [c for c in _tail_classes(np.asarray(counts)) if c in col and (y_val == c).any()]
    if not tail:
        return float("nan")
    rows = np.isin(y_val, tail)
    d = lda.decision_function(np.asarray(X_val, dtype=np.float64)[rows])
    if d.ndim == 1:  # two classes: the log-odds of the second
        d = np.stack([np.zeros_like(d), d], axis=1)
    proba = softmax(d - np.log(lda.priors_), axis=1)
    yr = y_val[rows]
    return float(np.mean([proba[yr == c, col[c]].mean() for c in tail]))


def lda_posterior(X: np.ndarray, y: np.ndarray) -> float:
    """Mean over the N samples of the shrinkage-LDA posterior of their own class,
    fitted and read on (X (N, D), y (N,)); in [0, 1]."""
    X, y = _labels(X, y)
    return _own_posterior(_lda(X, y), X, y)


def lda_tail_posterior(
    X: np.ndarray,
    y: np.ndarray,
    *,
    X_val: np.ndarray,
    y_val: np.ndarray,
    group_counts: np.ndarray,
) -> float:
    """Mean over tail classes of the mean uniform-prior LDA posterior of the class,
    over its validation samples; in [0, 1].

    X (N, D), y (N,) int class ids in 0..C-1 fit the LDA on all classes (the pooled
    covariance weighs each class by its frequency); the prior is then made uniform,
    and X_val, y_val are read. group_counts (C,): the long-tailed train counts that
    set the shot groups; the tail is the few-shot group (``heads.metrics.shot_groups``),
    or the rarest third of the classes when no class is few-shot. NaN when no tail
    class has a validation sample.
    """
    X = np.asarray(X, dtype=np.float64)
    _labels(X, y)  # the shape and class-count checks
    lda = _lda(X, np.asarray(y))
    return _tail_posterior(lda, X_val, np.asarray(y_val), group_counts)


def gbc(X: np.ndarray, y: np.ndarray, n_components: int = GBC_COMPONENTS) -> float:
    """Gaussian Bhattacharyya Coefficient of (X (N, D), y (N,)): <= 0, 0 when no two
    classes overlap. PCA to ``n_components`` (fewer when N or D is smaller)."""
    X, y = _labels(X, y)
    k = min(n_components, X.shape[1], len(X) - 1)
    Z = PCA(n_components=k, svd_solver="full").fit_transform(X)
    C = y.max() + 1
    mu = np.stack([Z[y == c].mean(0) for c in range(C)])
    var = np.stack([Z[y == c].var(0) for c in range(C)])
    var = np.maximum(var, VARIANCE_FLOOR * Z.var(0).mean())
    log_var = np.log(var)
    total = 0.0
    for i in range(C):  # one row of the (C, C) pair table at a time: O(C D) memory
        avg = (var[i] + var) / 2  # (C, k)
        d_b = ((mu[i] - mu) ** 2 / avg).sum(1) / 8 + 0.5 * (
            np.log(avg).sum(1) - 0.5 * (log_var[i].sum() + log_var.sum(1))
        )
        bc = np.exp(-d_b)
        total += bc.sum() - bc[i]
    return float(-total)


def h_score(X: np.ndarray, y: np.ndarray) -> float:
    """Regularized H-score of (X (N, D), y (N,)): ``tr(S_a^-1 (1 - a) S_b)`` with S_a
    the Ledoit-Wolf-shrunk feature covariance (shrinkage a) and S_b the covariance
    of the class-conditional means E[f | y] over the samples; >= 0."""
    X, y = _labels(X, y)
    X = X - X.mean(0)
    cov, alpha = ledoit_wolf(X, assume_centered=True)
    C = y.max() + 1
    means = np.stack([X[y == c].mean(0) for c in range(C)])
    g = means[y]  # E[f | y] for every sample
    between = g.T @ g / len(y)
    return float(np.trace(np.linalg.solve(cov, (1 - alpha) * between)))


CLOSED_FORM = ("lda_posterior", "lda_tail_posterior", "gbc", "h_score")
"""The results columns ``closed_form_scores`` fills, in order."""


def closed_form_scores(
    X: np.ndarray,
    y: np.ndarray,
    *,
    X_val: np.ndarray,
    y_val: np.ndarray,
    group_counts: np.ndarray,
) -> dict[str, float]:
    """Every score of ``CLOSED_FORM`` for train (X, y) and validation (X_val, y_val)
    of one backbone; ``group_counts`` (C,) sets the tail (``lda_tail_posterior``)."""
    X = np.asarray(X, dtype=np.float64)
    _labels(X, y)
    y = np.asarray(y)
    lda = _lda(X, y)  # one fit serves both LDA scores
    return {
        "lda_posterior": _own_posterior(lda, X, y),
        "lda_tail_posterior": _tail_posterior(lda, X_val, np.asarray(y_val), group_counts)
        if len(y_val)
        else float("nan"),
        "gbc": gbc(X, y),
        "h_score": h_score(X, y),
    }
