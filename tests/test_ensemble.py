"""Issue 21: the seeded flow ensemble, its spread, intervals that cover the flows'
training noise, and the precision that ran."""

from dataclasses import replace

import numpy as np
import pytest
from scipy.special import logsumexp

from lteval.dlsa import DLSA, DLSAConfig, diagnostics, separability_score, somers_d
from lteval.heads import LinearConfig
from lteval.rank.bootstrap import validate_ranking
from lteval.rank.scoring import BackboneScore, EvalArrays

CFG = DLSAConfig(
    num_clusters=12,
    flow_epochs=2,
    flow_batch_size=64,
    flow_seeds=3,
    classifier=LinearConfig(epochs=3),
)


def _blobs(seed=0, D=16):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(6), [200, 100, 60, 30, 15, 8])
    X = rng.normal(size=(6, D))[y] * 2 + rng.normal(size=(len(y), D))
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def fitted():
    X, y = _blobs()
    model = DLSA.from_config(CFG, random_state=0).fit(X, y, X_val=X[::4], y_val=y[::4])
    return model, X, y, diagnostics(model, X, y, n_permutations=20)


def test_stage_density_is_the_log_mean_of_the_flows_densities(fitted):
    model, X, _, rep = fitted
    t = model.trace(X)
    for lp, member in zip(t.log_density, t.member_log_density, strict=True):
        assert member.shape == (CFG.flow_seeds, len(X))
        expected = logsumexp(member.astype(np.float64), axis=0) - np.log(len(member))
        np.testing.assert_allclose(lp, expected, rtol=1e-5, atol=1e-4)
    # routing thresholds the ensemble's density, not one flow's
    route = np.full(len(X), len(model.stages_))
    for s in reversed(range(len(model.stages_))):
        route[t.log_density[s] >= model.stages_[s].threshold] = s
    np.testing.assert_array_equal(route, t.route)


def test_separability_sd_is_the_spread_of_each_flows_own_score(fitted):
    model, X, y, rep = fitted
    t = model.trace(X)
    freq = model.class_counts_[y]
    per_flow = []
    for r in range(CFG.flow_seeds):
        ds = [
            somers_d(member[r][t.route >= s], freq[t.route >= s])
            for s, member in enumerate(t.member_log_density)
        ]
        per_flow.append(separability_score(ds))
    assert rep["separability_flows"] == pytest.approx(per_flow)
    assert rep["separability_sd"] == pytest.approx(np.std(per_flow, ddof=1))
    assert rep["separability_sd"] > 0  # the seeds differ
    for row in rep["stages"]:
        assert len(row["flow_somers_d"]) == len(row["flow_epochs"]) == CFG.flow_seeds


def test_one_flow_has_no_spread():
    X, y = _blobs()
    model = DLSA.from_config(replace(CFG, flow_seeds=1), random_state=0).fit(
        X, y, X_val=X[::4], y_val=y[::4]
    )
    rep = diagnostics(model, X, y, n_permutations=20)
    assert np.isnan(rep["separability_sd"]) and len(rep["separability_flows"]) == 1


def _arrays(member_lp: np.ndarray, y: np.ndarray) -> EvalArrays:
    counts = np.array([100, 40, 10])
    return EvalArrays(y, counts, counts, {}, [member_lp], [np.ones(len(y), bool)])


def test_bootstrap_redraws_the_flows():
    """Identical flows: redrawing them changes nothing. Flows that disagree: the
    separability interval widens, and the eval resampling is the same either way."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    base = -y + rng.normal(size=len(y))  # head classes denser: a real separation
    same = np.stack([base] * 4)
    noisy = np.stack([base + rng.normal(scale=3, size=len(y)) for _ in range(4)])
    scores = [
        BackboneScore({"backbone": "same"}, arrays=_arrays(same, y)),
        BackboneScore({"backbone": "noisy"}, arrays=_arrays(noisy, y)),
    ]
    with_flows = validate_ranking(scores, "separability", n_boot=300, seed=1)
    eval_only = validate_ranking(scores, "separability", n_boot=300, seed=1, resample_flows=False)
    iv = with_flows["intervals"]
    assert iv["same"]["separability"] == eval_only["intervals"]["same"]["separability"]
    width = {
        k: np.diff(v["intervals"]["noisy"]["separability"])[0]
        for k, v in (("flows", with_flows), ("eval", eval_only))
    }
    assert width["flows"] > width["eval"] * 1.1, width
    # the full-sample value is the ensemble of every flow, whatever is redrawn
    full = logsumexp(noisy, axis=0) - np.log(4)
    freq = np.array([100, 40, 10])[y]
    p = next(p for p in with_flows["pairs"])
    assert p["difference"] == pytest.approx(abs(somers_d(base, freq)) - abs(somers_d(full, freq)))


def test_results_record_the_precision_that_ran():
    from lteval.rank.scoring import score_features

    X, y = _blobs(1)
    splits = {"train": (X, y), "val": (X[::4], y[::4]), "eval": (X[1::3], y[1::3])}
    over = {"flow_epochs": 1, "flow_seeds": 2, "num_clusters": 12}
    for autocast, ran in (("float32", "float32"), ("bfloat16", "bfloat16")):
        row = score_features(
            "b", splits, num_classes=6, heads=[], dlsa_overrides={**over, "flow_autocast": autocast}
        ).row
        assert row["flow_precision"] == ran and row["flow_seeds"] == 2
        assert row["dlsa_settings"]["flow_autocast"] == autocast
    assert DLSAConfig().flow_autocast == "float32"  # the default: one precision everywhere


def test_progress_counts_every_flow_epoch_with_its_stage():
    """The scoring bar advances once per flow epoch and jumps over the epochs an
    early stop skipped: num_stages * flow_epochs in all, each call naming its stage."""
    X, y = _blobs(2)
    calls = []
    # no epoch qualifies (every largest cluster >= 1), so patience 1 stops every flow at epoch 1
    cfg = replace(CFG, flow_epochs=6, flow_patience=1, max_cluster_size=1)
    model = DLSA.from_config(cfg, random_state=0).fit(
        X, y, X_val=X[::4], y_val=y[::4], progress=lambda n, what: calls.append((n, what))
    )
    assert sum(n for n, _ in calls) == len(model.stages_) * cfg.flow_epochs
    assert calls[0] == (0, "regular classifier")  # named before it trains
    trained = [w for n, w in calls if w.endswith(": classifier")]
    assert all(n == 0 for n, w in calls if w.endswith("classifier"))
    assert len(trained) == len(model.stages_)
    assert {w for _, w in calls[1:] if not w.endswith("classifier")} == {
        f"stage {s + 1}/{cfg.num_stages}: {cfg.flow_seeds} flows" for s in range(len(model.stages_))
    }
    assert any(n > 1 for n, _ in calls)  # a jump: some stage stopped early
