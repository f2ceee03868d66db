import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch

from lteval.data import long_tailed_counts
from lteval.dlsa import DLSA, DLSAConfig, PairSampler, diagnostics, scaled_for, somers_d
from lteval.dlsa.stages import Stage
from lteval.heads import LinearConfig


def planted(tail_spread: float, seed: int = 0, C: int = 8, D: int = 16):
    """Long-tailed Gaussian classes; tail classes are wider by ``tail_spread``."""
    rng = np.random.default_rng(seed)
    counts = long_tailed_counts(200, 40, C)
    centers = rng.normal(size=(C, D)) * 3
    spread = 1 + tail_spread * np.arange(C) / (C - 1)

    def draw(cnt):
        y = np.repeat(np.arange(C), cnt)
        return (centers[y] + rng.normal(size=(len(y), D)) * spread[y][:, None]).astype(
            np.float32
        ), y

    return draw(counts), draw(np.maximum(counts // 4, 1)), draw(np.full(C, 40))


FAST = DLSAConfig(
    num_clusters=16, flow_epochs=8, flow_batch_size=128, classifier=LinearConfig(epochs=30)
)


@pytest.fixture(scope="module")
def fitted():
    (Xtr, ytr), (Xv, yv), (Xe, ye) = planted(2.0)
    return (
        DLSA.from_config(FAST, random_state=0).fit(Xtr, ytr, X_val=Xv, y_val=yv),
        (Xtr, ytr),
        (Xe, ye),
    )


def test_sampler_draws_distinct_classes_uniformly():
    y = torch.tensor([0] * 500 + [1] * 50 + [2] * 5 + [3] * 1)
    s = PairSampler(y, torch.Generator().manual_seed(0))
    anchors, others, n = [], [], 0
    for _ in range(40):  # 40 batches of 1024 pairs
        rows, ca, other = s.batch(1024)
        a, b = rows[:1024], rows[other]
        assert (y[a] != y[b]).all() and (s.classes[ca] == y[a]).all()
        anchors.append(y[a].numpy())
        others.append(y[b].numpy())
        n += 1024
    np.testing.assert_allclose(
        np.bincount(np.concatenate(anchors), minlength=4) / n, 0.25, atol=0.01
    )
    np.testing.assert_allclose(
        np.bincount(np.concatenate(others), minlength=4) / n, 0.25, atol=0.01
    )
    # the rare classes' samples are all used: class 3 has a single sample
    assert set(torch.cat([r for r in [s.batch(64)[0] for _ in range(5)]]).tolist()) >= {555}


def test_sampler_falls_back_to_fresh_others_for_classes_absent_from_the_batch():
    y = torch.arange(50)  # 50 classes, one sample each
    s = PairSampler(y, torch.Generator().manual_seed(1))
    rows, ca, other = s.batch(4)  # 4 anchors cannot cover 50 "other" classes
    assert len(rows) > 4 and other.max() >= 4
    assert (y[rows[:4]] != y[rows[other]]).all()


def test_leave_one_out_prior_never_carries_own_label():
    hist = np.array([[1, 3, 0], [0, 0, 0], [2, 2, 4]])
    none = np.zeros((1, 3), bool)
    st = Stage(gmf=None, threshold=0.0, hist=hist[None], kept=none, majority=none.astype(int))
    clusters, labels = np.array([[0, 0, 2, 1]]), np.array([0, 1, 2, 0])
    P = st.prior(clusters, labels)
    np.testing.assert_allclose(P[0], [0, 1, 0])  # its own label was the only 0 in cluster 0
    np.testing.assert_allclose(P[1], [1 / 3, 2 / 3, 0])
    np.testing.assert_allclose(P[2], [2 / 7, 2 / 7, 3 / 7])
    np.testing.assert_allclose(P[3], [1 / 3] * 3)  # empty cluster: uniform
    np.testing.assert_allclose(st.prior(clusters)[0], [0.25, 0.75, 0])  # eval: no leave-out
    # two flows: the prior is the mean of each flow's own (cluster 2 of the second flow)
    two = Stage(None, 0.0, np.stack([hist, hist[[2, 1, 0]]]), none[[0, 0]], none[[0, 0]])
    P2 = two.prior(np.array([[0], [0]]), np.array([0]))
    np.testing.assert_allclose(P2[0], ([0, 1, 0] + np.array([1, 2, 4]) / 7) / 2)


def test_stage_histogram_counts_the_train_samples_per_cluster(fitted):
    """The stored (K, C) histogram is the train labels counted over the clusters the
    fitted flow assigns (what the leave-one-out prior is built from)."""
    model, (Xtr, ytr), _ = fitted
    st = model.stages_[0]
    clusters = model.trace(Xtr).clusters[0]  # (R, N): each flow's
    assert st.hist.shape[0] == clusters.shape[0] == len(st.gmf.epoch)
    for r in range(len(clusters)):
        h = np.zeros_like(st.hist[r])
        np.add.at(h, (clusters[r], ytr), 1)
        np.testing.assert_array_equal(st.hist[r], h)


def test_train_routing_matches_rho(fitted):
    model, (Xtr, _), _ = fitted
    assert len(model.stages_) == 3
    for frac in model.train_routing_:
        assert 0.3 <= frac < 0.33
    route = model.route(Xtr)
    active = len(Xtr)
    for s in range(3):
        n = (route == s).sum()
        assert 0.3 <= n / active < 0.33
        active -= n
    assert (route == 3).sum() == active


def test_report_shapes_and_consistency(fitted):
    model, _, (Xe, ye) = fitted
    rep = diagnostics(model, Xe, ye)
    pred = model.predict(Xe)
    assert rep["accuracy"]["overall"] == pytest.approx((pred == ye).mean())
    assert 0 <= rep["separability"] <= 1
    for row in rep["stages"]:
        for side in ("filtered", "remaining"):
            shares = [row[f"{side}_{g}_share"] for g in ("many", "medium", "few")]
            if row["n_filtered"]:
                assert sum(shares) == pytest.approx(1)
    assert sum(rep["routed_share"]) == pytest.approx(1)
    np.testing.assert_array_equal(rep["predictions"], pred)
    np.testing.assert_array_equal(rep["route"], model.route(Xe))
    assert len(rep["log_density"]) == len(model.stages_)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_more_planted_separation_gives_higher_score(dtype):
    cfg = replace(FAST, flow_autocast=dtype)
    scores = []
    for spread in (0.0, 3.0):
        (Xtr, ytr), (Xv, yv), (Xe, ye) = planted(spread, seed=1)
        scores.append(
            diagnostics(
                DLSA.from_config(cfg, random_state=0).fit(Xtr, ytr, X_val=Xv, y_val=yv), Xe, ye
            )["separability"]
        )
    # (0.697 -> 0.744 in float32 with lteval's default Adam at 1e-3 and batch-norm
    # recalibration; 0.655 -> 0.728 with SGD at 0.02; 0.42 -> 0.65 at the published
    # SGD lr 0.2)
    assert scores[1] > scores[0] + 0.03, scores


def test_somers_d_matches_brute_force():
    rng = np.random.default_rng(0)
    s, f = rng.normal(size=60).round(1), rng.integers(1, 5, 60)
    num = den = 0
    for i, j in itertools.combinations(range(60), 2):
        if f[i] != f[j]:
            den += 1
            num += np.sign(s[j] - s[i]) * np.sign(f[j] - f[i])
    assert somers_d(s, f) == pytest.approx(num / den)
    assert somers_d(f.astype(float), f) == 1 and somers_d(-f.astype(float), f) == -1
    assert np.isnan(somers_d(s, np.ones(60)))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        DLSA.from_config(FAST).fit(np.ones((5, 3)), np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        DLSA.from_config(FAST).fit(np.full((5, 3), np.nan), np.zeros(5))


def test_scaled_config_for_small_sets():
    cfg = scaled_for(400, 10)
    assert cfg.num_clusters == 20 and cfg.flow_batch_size == 100
    assert scaled_for(10_000_000, 100).num_clusters == 500


def test_divergent_flow_stops_staging_instead_of_routing_nan():
    (Xtr, ytr), (Xv, yv), (Xe, ye) = planted(1.0, seed=2)
    cfg = DLSAConfig(
        num_clusters=8,
        flow_epochs=3,
        flow_batch_size=64,
        flow_lr=1e6,
        flow_grad_clip=None,
        classifier=LinearConfig(epochs=5),
    )
    model = DLSA.from_config(cfg, random_state=0).fit(Xtr * 1e3, ytr, X_val=Xv * 1e3, y_val=yv)
    assert len(model.stages_) == 0 and "diverged" in model.stopped_
    rep = diagnostics(model, Xe * 1e3, ye)
    assert np.isnan(rep["separability"]) and (model.route(Xe * 1e3) == 0).all()


def test_gradient_clipping_keeps_training_finite():
    """Squared-ReLU features (heavy-tailed, like random-init CNNs) make plain SGD at
    lr 0.2 hit a non-finite loss; with the default clip every stage trains."""
    from dataclasses import replace

    rng = np.random.default_rng(0)
    C, D = 8, 256
    y = np.repeat(np.arange(C), [160, 90, 50, 30, 16, 9, 5, 3])
    X = np.maximum(rng.normal(size=(len(y), D)) + rng.normal(size=(C, D))[y], 0) ** 2
    cfg = DLSAConfig(
        num_clusters=16,
        flow_epochs=5,
        flow_batch_size=64,
        flow_optimizer="sgd",
        flow_lr=0.2,
        classifier=LinearConfig(epochs=5),
    )
    unclipped = DLSA.from_config(replace(cfg, flow_grad_clip=None), random_state=0).fit(X, y)
    assert any("non-finite" in sel for st in unclipped.stages_ for sel in st.gmf.selection)
    clipped = DLSA.from_config(cfg, random_state=0).fit(X, y)
    assert clipped.stopped_ is None and len(clipped.stages_) == 3
    assert not any("non-finite" in sel for st in clipped.stages_ for sel in st.gmf.selection)


def test_continuous_labels_are_rejected():
    with pytest.raises(ValueError, match="Unknown label type"):
        DLSA.from_config(FAST).fit(np.ones((5, 3)), np.array([0.5, 1, -1, 0, 1]))


def test_regular_classifier_is_the_balanced_softmax_probe(fitted):
    from lteval.heads import BalancedSoftmaxProbe

    model, (Xtr, ytr), (Xe, _) = fitted
    (_, _), (Xv, yv), _ = planted(2.0)  # the validation split the fixture used
    probe = BalancedSoftmaxProbe.from_config(FAST.classifier, random_state=0)
    probe.fit(Xtr, ytr, X_val=Xv, y_val=yv, classes=np.arange(8))
    np.testing.assert_array_equal(model.predict_regular(Xe), probe.predict(Xe))


def test_presets_and_yaml(tmp_path):
    from lteval.dlsa import from_yaml, preset

    p = preset("places-lt")
    assert (p.lambda_bal, p.flow_epochs, p.flow_batch_size, p.num_stages) == (2.0, 60, 512, 1)
    assert preset("inat2018").flow_epochs == 30 and preset("imagenet-lt") == DLSAConfig()
    f = tmp_path / "run.yaml"
    f.write_text("preset: places-lt\nnum_clusters: 64\nclassifier:\n  epochs: 7\n")
    cfg = from_yaml(f)
    assert cfg.num_clusters == 64 and cfg.classifier.epochs == 7 and cfg.lambda_bal == 2.0
    f.write_text("num_cluster: 64\n")
    with pytest.raises(ValueError, match="unknown DLSA setting\\(s\\) \\['num_cluster'\\]"):
        from_yaml(f)
    with pytest.raises(ValueError, match="unknown DLSA preset"):
        preset("coco-lt")


def test_flow_training_is_bitwise_reproducible_on_cpu(two_threads):
    """At this size, two threads summed a gather's backward in varying order before
    ``deterministic`` (log p differed by ~6e-5 between identical runs)."""
    from lteval.dlsa.density import score
    from lteval.dlsa.train import fit_stage

    rng = np.random.default_rng(0)
    y = torch.as_tensor(rng.integers(0, 100, 6000))
    X = torch.as_tensor(rng.normal(size=(6000, 384)).astype(np.float32))
    cfg = replace(DLSAConfig(), flow_epochs=1, flow_autocast="float32")
    a = score(fit_stage(X, y, cfg, 0).model, X)[0]
    b = score(fit_stage(X, y, cfg, 0).model, X)[0]
    assert torch.equal(a, b)
    assert not torch.are_deterministic_algorithms_enabled()  # the global setting is restored
