import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression

from lteval.heads import (
    BalancedSoftmaxProbe,
    LinearConfig,
    Standardizer,
    accuracy_report,
    balanced_accuracy,
    balanced_accuracy_se,
    shot_groups,
    train_balanced_softmax,
)


def test_shot_groups_use_standard_thresholds():
    assert shot_groups(np.array([101, 100, 20, 19])).tolist() == ["many", "medium", "medium", "few"]


def test_accuracy_report_by_hand():
    counts = np.array([200, 50, 5])
    y = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    p = np.array([0, 1, 1, 1, 0, 2, 0, 0])
    r = accuracy_report(y, p, counts)
    assert r["overall"] == pytest.approx(4 / 8)
    assert r["balanced"] == pytest.approx((0.5 + 1 + 0.25) / 3)
    assert (r["many"], r["medium"], r["few"]) == (0.5, 1.0, 0.25)
    r2 = accuracy_report(np.array([0, 0]), np.array([0, 1]), counts)
    assert np.isnan(r2["few"]) and np.isnan(r2["per_class"][2])


def test_probe_matches_logistic_regression_on_balanced_data():
    X, y = make_blobs(600, n_features=10, centers=4, cluster_std=4.0, random_state=0)
    Xtr, ytr, Xte, yte = X[:400], y[:400], X[400:], y[400:]
    ours = BalancedSoftmaxProbe.from_config(LinearConfig(epochs=60), random_state=0).fit(
        Xtr, ytr, X_val=Xtr[:80], y_val=ytr[:80]
    )
    sc = Standardizer().fit(Xtr)
    ref = LogisticRegression(max_iter=2000).fit(sc.transform(Xtr), ytr)
    acc_ours = (ours.predict(Xte) == yte).mean()
    acc_ref = ref.score(sc.transform(Xte), yte)
    assert acc_ours == pytest.approx(acc_ref, abs=0.03)
    assert (ours.predict(Xte) == ref.predict(sc.transform(Xte))).mean() > 0.93


def test_balanced_softmax_helps_the_tail():
    rng = np.random.default_rng(0)
    counts = [500, 20]
    y = np.repeat([0, 1], counts)
    X = (rng.normal(size=(520, 2)) + np.where(y[:, None] == 0, 0, 1.5)).astype(np.float32)
    Xt = (rng.normal(size=(400, 2)) + np.repeat([0, 1.5], 200)[:, None]).astype(np.float32)
    yt = np.repeat([0, 1], 200)
    cfg = LinearConfig(epochs=40)
    bsm = train_balanced_softmax(X, y, 2, config=cfg)
    plain = train_balanced_softmax(X, y, 2, class_counts=np.array([1, 1]), config=cfg)
    tail = yt == 1
    assert (bsm.predict(Xt)[tail] == 1).mean() > (plain.predict(Xt)[tail] == 1).mean() + 0.2


def test_epoch_is_chosen_on_validation_and_absent_classes_never_predicted():
    X, y = make_blobs(200, n_features=4, centers=3, random_state=1)
    head = train_balanced_softmax(
        X[y != 2], y[y != 2], 3, X_val=X[:40], y_val=y[:40], config=LinearConfig(epochs=15)
    )
    assert 1 <= head.best_epoch <= 15 and len(head.history) == 15
    assert head.val_balanced == max(head.history)
    # the weights kept are the best epoch's: they score that on validation again
    assert balanced_accuracy_of(head, X[:40], y[:40]) == pytest.approx(head.val_balanced)
    assert not (head.predict(X) == 2).any()


def test_warm_start_competes_as_epoch_zero():
    X, y = make_blobs(300, n_features=6, centers=3, cluster_std=3.0, random_state=2)
    X = X.astype(np.float32)
    base = train_balanced_softmax(
        X, y, 3, X_val=X[:60], y_val=y[:60], config=LinearConfig(epochs=30)
    )
    P = np.random.default_rng(0).random((300, 4)).astype(np.float32)  # an uninformative prior
    head = train_balanced_softmax(
        X[:40],
        (y[:40] + 1) % 3,  # wrong labels: every trained epoch is worse than the start
        3,
        P=P[:40],
        X_val=X[200:],
        y_val=y[200:],
        P_val=P[200:],
        config=LinearConfig(epochs=10, lr=1.0, lr_grid=None),
        init=base.module,
        mask_counts=np.bincount(y, minlength=3),
    )
    assert head.best_epoch == 0 and len(head.history) == 10
    np.testing.assert_array_equal(head.predict(X, P), base.predict(X))


def test_learning_rate_is_chosen_on_validation():
    X, y = make_blobs(400, n_features=8, centers=4, cluster_std=4.0, random_state=3)
    X = Standardizer().fit(X).transform(X)
    cfg = LinearConfig(epochs=15, lr_grid=(1e-2, 1e-5))  # 1e-5 barely moves in 15 epochs
    head = train_balanced_softmax(X[:300], y[:300], 4, X_val=X[300:], y_val=y[300:], config=cfg)
    one = {
        lr: train_balanced_softmax(
            X[:300],
            y[:300],
            4,
            X_val=X[300:],
            y_val=y[300:],
            config=LinearConfig(epochs=15, lr=lr, lr_grid=None),
        )
        for lr in cfg.lr_grid
    }
    assert head.lr == max(one, key=lambda lr: one[lr].val_balanced)
    assert head.val_balanced == max(h.val_balanced for h in one.values())


def test_warm_start_needs_a_gain_beyond_the_standard_error():
    X, y = make_blobs(400, n_features=6, centers=3, cluster_std=2.5, random_state=4)
    X = Standardizer().fit(X).transform(X)
    weak = train_balanced_softmax(  # one epoch at a tiny lr: a poor starting point
        X, y, 3, config=LinearConfig(epochs=1, lr=1e-5, lr_grid=None)
    )

    def tuned(margin: float):
        return train_balanced_softmax(
            X[:300],
            y[:300],
            3,
            X_val=X[300:],
            y_val=y[300:],
            config=LinearConfig(epochs=20, lr_grid=None, warm_start_margin_se=margin),
            init=weak.module,
        )

    start = balanced_accuracy_of(weak, X[300:], y[300:])
    free, strict, never = tuned(0.0), tuned(1.0), tuned(1e6)
    se = balanced_accuracy_se(y[300:], weak.predict(X[300:]))  # the margin's own unit
    assert free.best_epoch > 0 and free.val_balanced > start
    if strict.best_epoch:  # an epoch was taken only with a gain beyond one standard error
        assert strict.val_balanced > start + se
    else:  # or none gained that much
        assert max(strict.history) <= start + se
    assert never.best_epoch == 0 and never.val_balanced == pytest.approx(start)


def balanced_accuracy_of(head, X, y) -> float:
    from lteval.heads.metrics import balanced_accuracy

    return balanced_accuracy(y, head.predict(X))


def test_shot_group_accuracy_is_the_mean_of_its_class_accuracies():
    # class 0: 1 eval sample, right; class 1: 3 eval samples, 1 right. Both few-shot.
    y = np.array([0, 1, 1, 1, 2])
    pred = np.array([0, 1, 0, 0, 2])
    rep = accuracy_report(y, pred, np.array([5, 5, 500]))
    assert rep["few"] == pytest.approx((1.0 + 1 / 3) / 2)  # not 2/4 pooled over samples
    assert rep["many"] == 1.0 and np.isnan(rep["medium"])


def test_dlsa_shot_groups_count_train_plus_validation():
    from lteval.dlsa import DLSA, DLSAConfig, diagnostics

    rng = np.random.default_rng(0)
    # class 0 has 90 train + 22 validation images: 112 in the long-tailed set, many-shot
    y = np.repeat([0, 1], [90, 15])
    yv = np.repeat([0, 1], [22, 4])
    X = rng.normal(size=(len(y), 4)).astype(np.float32) + y[:, None]
    Xv = rng.normal(size=(len(yv), 4)).astype(np.float32) + yv[:, None]
    cfg = DLSAConfig(num_stages=1, num_clusters=4, flow_epochs=1, flow_batch_size=32)
    m = DLSA.from_config(cfg, random_state=0).fit(X, y, X_val=Xv, y_val=yv, classes=np.arange(2))
    assert m.class_counts_.tolist() == [90, 15] and m.group_counts_.tolist() == [112, 19]
    assert not np.isnan(diagnostics(m, Xv, yv)["accuracy"]["many"])


def test_balanced_accuracy_se_is_per_class_and_grows_with_rare_classes():

    # 98 head samples, 2 tail samples: the plain binomial SE over 100 samples
    # understates the balanced accuracy's noise, which the tail's 2 samples dominate
    y = np.array([0] * 98 + [1] * 2)
    pred = y.copy()
    pred[:10] = 1
    p0, p1 = 89 / 100, 3 / 4  # add-one smoothed per-class hit rates
    expected = np.sqrt(p0 * (1 - p0) / 98 + p1 * (1 - p1) / 2) / 2
    assert balanced_accuracy_se(y, pred) == pytest.approx(expected)
    a = balanced_accuracy(y, pred)
    assert balanced_accuracy_se(y, pred) > 3 * np.sqrt(a * (1 - a) / len(y))
    # a perfectly balanced set of 50 + 50 is far less noisy than 98 + 2
    yb = np.repeat([0, 1], 50)
    assert balanced_accuracy_se(yb, yb) < balanced_accuracy_se(y, y)
    assert np.isnan(balanced_accuracy_se(np.array([], int), np.array([], int)))


@pytest.mark.parametrize("case", ["plain", "duplicate columns", "low rank", "offset, tiny spread"])
def test_logme_from_the_gram_matrix_equals_the_svd_path(case):
    from lteval.heads.logme import _class_evidence, _svd_projections, logme

    rng = np.random.default_rng(0)
    n, d, C = 3000, 64, 12
    y = rng.integers(0, C, n)
    X = rng.normal(size=(n, d)) + np.eye(C, d)[y] * 2
    if case == "duplicate columns":
        X[:, -8:] = X[:, :8]
    elif case == "low rank":
        X = X[:, :10] @ rng.normal(size=(10, d))
    elif case == "offset, tiny spread":
        X = X * 1e-3 + 5
    X = X.astype(np.float32)
    sigma, x2, res = _svd_projections(np.asarray(X, np.float64), y, C)
    by_svd = np.mean([_class_evidence(x2[k], res[k], sigma, n, d)[0] for k in range(C)])
    assert abs(logme(X, y, chunk=1000) - by_svd) < 1e-6  # N > D: the Gram path, in chunks


def test_knn_votes_as_scikit_learn_does_in_any_chunking(monkeypatch):
    from sklearn.neighbors import KNeighborsClassifier

    from lteval.heads import KNN

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(6, 10))
    y = np.repeat(np.arange(6), [80, 50, 30, 20, 12, 8])
    X = (centres[y] * 0.8 + rng.normal(size=(len(y), 10))).astype(np.float32)
    yq = np.repeat(np.arange(6), 15)
    Xq = (centres[yq] * 0.8 + rng.normal(size=(len(yq), 10))).astype(np.float32)
    knn = KNN().fit(X, y, X_val=Xq, y_val=yq)
    Xs, Qs = knn.scaler_.transform(X), knn.scaler_.transform(Xq)
    whole = knn._votes(Qs, list(KNN.KS))
    monkeypatch.setattr(KNN, "MAX_SIMILARITIES", 7 * len(X))  # 7 queries per chunk
    chunked = knn._votes(Qs, list(KNN.KS))
    for k in KNN.KS:
        ref = KNeighborsClassifier(k, metric="cosine").fit(Xs, y).predict(Qs)
        np.testing.assert_array_equal(whole[k], ref)
        np.testing.assert_array_equal(chunked[k], ref)
    assert knn.k_ in KNN.KS and knn.predict(Xq).shape == (90,)
