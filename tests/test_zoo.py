"""The baseline heads: agreement with scikit-learn where they coincide, and each
hyper-parameter chosen on validation."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier, NearestCentroid

from lteval.heads import (
    CRT,
    KNN,
    LWS,
    NCM,
    LinearConfig,
    LinearProbe,
    LogitAdjusted,
    Standardizer,
    TauNorm,
    balanced_accuracy,
    logme,
)
from lteval.heads.inputs import carve_validation
from lteval.heads.logme import _class_evidence

CFG = LinearConfig(epochs=40)


def balanced_blobs(seed=0):
    X, y = make_blobs(900, n_features=10, centers=5, cluster_std=3.0, random_state=seed)
    return X[:500], y[:500], X[500:700], y[500:700], X[700:], y[700:]


def long_tailed(seed=0):
    rng = np.random.default_rng(seed)
    counts = np.array([400, 150, 50, 15, 6])
    centers = rng.normal(size=(5, 8)) * 2.0

    def draw(cnt):
        y = np.repeat(np.arange(5), cnt)
        return (centers[y] + rng.normal(size=(len(y), 8)) * 1.5).astype(np.float32), y

    return (*draw(counts), *draw(np.full(5, 40)), *draw(np.full(5, 100)))


def test_ce_probe_reproduces_logistic_regression():
    X, y, Xv, yv, Xt, yt = balanced_blobs()
    ours = LinearProbe.from_config(CFG).fit(X, y, X_val=Xv, y_val=yv)
    sc = Standardizer().fit(X.astype(np.float32))
    ref = LogisticRegression(max_iter=3000).fit(sc.transform(X), y)
    assert (ours.predict(Xt) == ref.predict(sc.transform(Xt))).mean() > 0.93
    assert ours.score(Xt, yt) == pytest.approx(
        balanced_accuracy(yt, ref.predict(sc.transform(Xt))), abs=0.03
    )


def test_ncm_reproduces_nearest_centroid():
    X, y, _, _, Xt, _ = balanced_blobs(1)
    ours = NCM(metric="euclidean").fit(X, y)
    sc = Standardizer().fit(X.astype(np.float32))
    ref = NearestCentroid().fit(sc.transform(X), y)
    np.testing.assert_array_equal(ours.predict(Xt), ref.predict(sc.transform(Xt)))
    cos = NCM().fit(X, y)
    Z = sc.transform(Xt)
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    Zt = sc.transform(X)  # class means of unit train vectors, computed here, not read back
    Zt /= np.linalg.norm(Zt, axis=1, keepdims=True)
    M = np.stack([Zt[y == c].mean(0) for c in range(len(np.unique(y)))])
    M /= np.linalg.norm(M, axis=1, keepdims=True)
    np.testing.assert_array_equal(cos.predict(Xt), (Z @ M.T).argmax(1))


def test_knn_chooses_k_on_validation_and_matches_sklearn():
    X, y, Xv, yv, Xt, _ = balanced_blobs(2)
    knn = KNN().fit(X, y, X_val=Xv, y_val=yv)
    # the k kept is the one whose validation balanced accuracy is highest
    assert balanced_accuracy(yv, knn.predict(Xv)) == pytest.approx(max(knn.k_scores_))
    sc = Standardizer().fit(X.astype(np.float32))
    ref = KNeighborsClassifier(knn.k_, metric="cosine").fit(sc.transform(X), y)
    np.testing.assert_array_equal(knn.predict(Xt), ref.predict(sc.transform(Xt)))


def test_post_hoc_heads_help_the_tail_and_choose_tau_on_validation():
    X, y, Xv, yv, Xt, yt = long_tailed(seed=1)
    ce = LinearProbe.from_config(CFG).fit(X, y, X_val=Xv, y_val=yv)
    la = LogitAdjusted.from_config(CFG).fit(X, y, X_val=Xv, y_val=yv)
    tn = TauNorm.from_config(CFG).fit(X, y, X_val=Xv, y_val=yv)
    assert la.score(Xv, yv) == pytest.approx(max(la.tau_scores_))  # the val-best tau is kept
    assert la.tau_ > 0 and la.score(Xt, yt) > ce.score(Xt, yt)
    assert tn.score(Xv, yv) >= max(tn.tau_scores_) - 1e-9
    few = yt == 4
    crt = CRT.from_config(CFG).fit(X, y, X_val=Xv, y_val=yv)
    assert (crt.predict(Xt)[few] == 4).mean() > (ce.predict(Xt)[few] == 4).mean()
    lws = LWS.from_config(CFG).fit(X, y, X_val=Xv, y_val=yv)
    assert lws.score(Xv, yv) >= ce.score(Xv, yv)  # scale 1 (= the CE probe) is a candidate


@pytest.mark.parametrize("cls", [LogitAdjusted, TauNorm, LWS, KNN])
def test_without_validation_a_head_holds_out_a_seeded_share_of_train(cls):
    """What fit(X, y) does is exactly fit on the rest with the held-out share passed."""
    X, y, *_ = long_tailed(seed=2)
    est = cls(random_state=4, validation_fraction=0.25)
    if cls is not KNN:
        est.set_params(epochs=10)
    held = carve_validation(y, 0.25, 4)
    assert 0.2 < held.mean() < 0.3 and all((y[~held] == c).any() for c in range(5))
    alone = est.fit(X, y)
    explicit = clone(est).fit(X[~held], y[~held], X_val=X[held], y_val=y[held])
    np.testing.assert_array_equal(alone.predict(X), explicit.predict(X))
    with pytest.raises(ValueError, match="validation_fraction"):
        clone(est).set_params(validation_fraction=1.5).fit(X, y)
    with pytest.raises(ValueError, match="no validation sample can be held out"):
        clone(est).fit(X[:2], np.array([0, 1]))


def test_logme_closed_form_equals_direct_marginal_likelihood():
    rng = np.random.default_rng(0)
    F_, t = rng.normal(size=(30, 5)), rng.normal(size=30)
    u, s, _ = np.linalg.svd(F_, full_matrices=False)
    proj = u.T @ t
    ev, alpha, beta = _class_evidence(proj**2, float(t @ t - (proj**2).sum()), s**2, 30, 5)
    cov = F_ @ F_.T / alpha + np.eye(30) / beta
    direct = multivariate_normal(np.zeros(30), cov).logpdf(t) / 30
    assert ev == pytest.approx(direct, rel=1e-6)


def test_logme_prefers_informative_features():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    informative = np.eye(4)[y] * 3 + rng.normal(size=(400, 4))
    noise = rng.normal(size=(400, 4))
    X_good = np.hstack([informative, rng.normal(size=(400, 12))])
    X_bad = np.hstack([noise, rng.normal(size=(400, 12))])
    assert logme(X_good, y) > logme(X_bad, y) + 0.1
