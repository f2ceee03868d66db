"""The closed-form transferability scores (lteval.heads.transfer) against their
formulas and the behaviour each is meant to have."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from lteval.heads.transfer import gbc, h_score, lda_posterior, lda_tail_posterior

SIZES = [120, 100, 60, 15, 8, 5]


def _lt_blobs(std: float, seed: int = 0):
    """Long-tailed train (SIZES per class), and a balanced validation set."""
    X, y = make_blobs(1200, n_features=16, centers=6, cluster_std=std, random_state=seed)
    tr = np.concatenate([np.flatnonzero(y == c)[:n] for c, n in enumerate(SIZES)])
    va = np.concatenate([np.flatnonzero(y == c)[-30:] for c in range(6)])
    return X[tr], y[tr], X[va], y[va], np.bincount(y[tr], minlength=6)


SCORES = {
    "lda": lambda X, y, Xv, yv, counts: lda_posterior(X, y),
    "tail": lambda X, y, Xv, yv, counts: lda_tail_posterior(
        X, y, X_val=Xv, y_val=yv, group_counts=counts
    ),
    "gbc": lambda X, y, Xv, yv, counts: gbc(X, y),
    "h": lambda X, y, Xv, yv, counts: h_score(X, y),
}


@pytest.mark.parametrize("score", SCORES)
def test_each_score_ranks_separated_features_above_overlapping_ones(score):
    vals = [SCORES[score](*_lt_blobs(std)) for std in (1.0, 6.0, 12.0)]
    assert vals[0] > vals[1] > vals[2], vals


def test_gbc_is_the_bhattacharyya_formula_on_two_one_dimensional_classes():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 50), rng.normal(1.5, 2, 30)
    X, y = np.concatenate([a, b])[:, None], np.repeat([0, 1], [50, 30])
    v1, v2 = a.var(), b.var()
    d_b = (a.mean() - b.mean()) ** 2 / (4 * (v1 + v2)) + 0.5 * math.log(
        (v1 + v2) / 2 / math.sqrt(v1 * v2)
    )
    assert gbc(X, y) == pytest.approx(-2 * math.exp(-d_b), rel=1e-9)
    far = np.concatenate([a, b + 1e4])[:, None]
    assert -1e-12 < gbc(far, y) <= 0  # no overlap: 0


def test_the_tail_variant_reads_the_tail_and_ignores_the_head():
    """Head classes 0 and 1 share one centre (inseparable); the tail classes are far
    apart: the tail score is near 1, the sample-weighted posterior is not."""
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0], [0, 0], [20, 0], [0, 20], [20, 20], [-20, 0]], float)
    y = np.repeat(np.arange(6), SIZES)
    X = centres[y] + rng.normal(0, 1, (len(y), 2))
    yv = np.repeat(np.arange(6), 20)
    Xv = centres[yv] + rng.normal(0, 1, (len(yv), 2))
    counts = np.bincount(y)
    assert lda_tail_posterior(X, y, X_val=Xv, y_val=yv, group_counts=counts) > 0.99
    assert lda_posterior(X, y) < 0.8
    # no validation image of a tail class: undefined, not a number from the head
    head_only = yv < 2
    nan = lda_tail_posterior(X, y, X_val=Xv[head_only], y_val=yv[head_only], group_counts=counts)
    assert math.isnan(nan)


def test_the_tail_is_the_rarest_third_when_no_class_is_few_shot():
    X, y, Xv, yv, counts = _lt_blobs(6.0)
    big = counts + 100  # nothing under 20: the two rarest of six classes are the tail
    got = lda_tail_posterior(X, y, X_val=Xv, y_val=yv, group_counts=big)
    tail_only = np.isin(yv, np.argsort(big)[:2])
    again = lda_tail_posterior(X, y, X_val=Xv[tail_only], y_val=yv[tail_only], group_counts=big)
    assert got == again and 0 <= got <= 1


def test_h_score_is_between_zero_and_c_minus_one_and_near_zero_without_signal():
    X, y, *_ = _lt_blobs(1.0)
    assert 0 <= h_score(X, y) <= 5
    rng = np.random.default_rng(2)
    noise = rng.normal(size=(2000, 16))
    assert h_score(noise, rng.integers(0, 6, 2000)) < 0.1


@pytest.mark.parametrize("fn", [lda_posterior, gbc, h_score])
def test_one_class_is_refused(fn):
    with pytest.raises(ValueError, match="at least 2 classes"):
        fn(np.ones((10, 3)), np.zeros(10, int))


def test_the_uniform_prior_is_the_fitted_lda_without_its_class_frequencies():
    """On balanced classes the priors are already uniform: the tail score is then the
    mean posterior sklearn's LDA gives; closed_form_scores fits once and agrees with
    each score computed alone."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    from lteval.heads.transfer import closed_form_scores

    X, y = make_blobs(300, n_features=5, centers=3, cluster_std=4.0, random_state=3)
    Xv, yv = make_blobs(90, n_features=5, centers=3, cluster_std=4.0, random_state=3)
    counts = np.array([100, 100, 10])  # class 2 is the tail
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(X, y)
    direct = lda.predict_proba(Xv[yv == 2])[:, 2].mean()
    got = lda_tail_posterior(X, y, X_val=Xv, y_val=yv, group_counts=counts)
    assert got == pytest.approx(direct, rel=1e-9)
    both = closed_form_scores(X, y, X_val=Xv, y_val=yv, group_counts=counts)
    assert both["lda_tail_posterior"] == pytest.approx(got, rel=1e-12)
    assert both["lda_posterior"] == pytest.approx(lda_posterior(X, y), rel=1e-12)
    assert both["gbc"] == gbc(X, y) and both["h_score"] == h_score(X, y)
    two = lda_tail_posterior(X[y < 2], y[y < 2], X_val=Xv, y_val=yv, group_counts=counts[:2] // 10)
    assert 0 <= two <= 1  # two classes: sklearn's one-column decision function


def test_one_image_classes_raise_no_warning():
    import warnings

    from lteval.heads.transfer import closed_form_scores

    X, y, Xv, yv, counts = _lt_blobs(4.0)
    X, y = np.concatenate([X, X[:1] + 1]), np.concatenate([y, [6]])  # a 7th class, one image
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = closed_form_scores(X, y, X_val=Xv, y_val=yv, group_counts=np.append(counts, 1))
    assert all(np.isfinite(v) for v in got.values())
