"""Issue 11: the separability score's permutation null, balance gain and cluster coverage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from test_dlsa import FAST, planted

from lteval.dlsa import DLSA, diagnostics, somers_d
from lteval.dlsa.separability import (
    class_pair_margins,
    permutation_null,
    somers_d_from_margins,
    stouffer,
)
from lteval.rank import Evidence, Row
from lteval.report.render import separation_evidence


@pytest.mark.parametrize("seed", range(4))
def test_class_pair_margins_reproduce_somers_d_with_ties_and_non_finite_scores(seed):
    rng = np.random.default_rng(seed)
    C = 7
    y = rng.integers(0, C, 300)
    scores = rng.integers(0, 15, 300).astype(float)  # many ties in the scores
    scores[:4] = [np.nan, -np.inf, np.inf, np.nan]
    freq = rng.integers(1, 5, C)  # and ties in the frequencies
    M = class_pair_margins(scores, y, C)
    assert np.allclose(M, -M.T)  # antisymmetric by construction
    n = np.bincount(y, minlength=C)
    assert somers_d_from_margins(M, n, freq) == pytest.approx(somers_d(scores, freq[y]))
    assert np.isnan(somers_d_from_margins(M, n, np.full(C, 3)))  # no pair of different freq


def _class_offsets(freq: np.ndarray, rng, slope: float) -> tuple[np.ndarray, np.ndarray]:
    """Scores = a per-class offset (unrelated to frequency) + slope * log frequency + noise."""
    C = len(freq)
    y = np.repeat(np.arange(C), 40)
    offsets = rng.normal(size=C)
    return offsets[y] + slope * np.log(freq[y]) + rng.normal(size=len(y)) * 0.5, y


def test_null_tells_frequency_from_mere_class_differences():
    freq = np.array([500, 300, 180, 100, 60, 35, 20, 12, 7, 4])
    rng = np.random.default_rng(0)
    abs_d, rejected = [], 0
    for _ in range(40):  # classes differ, but not by frequency
        s, y = _class_offsets(freq, rng, slope=0.0)
        r = permutation_null(s, y, freq, 300, rng)
        abs_d.append(abs(r["d"]))
        rejected += stouffer([r["z"]])[1] < 0.05
    # |D| is far from 0 by chance alone (the flaw the null corrects) ...
    assert np.mean(abs_d) > 0.1
    # ... yet the test rejects at about its nominal rate (40 draws; 8 is P < 0.001 at 5%)
    assert rejected <= 7
    s, y = _class_offsets(freq, rng, slope=1.0)  # log p(x) rises with frequency
    r = permutation_null(s, y, freq, 300, rng)
    assert r["z"] > 3 and stouffer([r["z"]])[1] < 0.01
    assert abs(r["null_mean"]) < 0.1 and r["null_sd"] > 0


def test_null_is_seeded_and_undefined_without_frequency_contrast():
    freq = np.array([50, 20, 5])
    s, y = _class_offsets(freq, np.random.default_rng(1), slope=1.0)
    a = permutation_null(s, y, freq, 100, np.random.default_rng(3))
    b = permutation_null(s, y, freq, 100, np.random.default_rng(3))
    assert a == b
    flat = permutation_null(s, y, np.full(3, 10), 100, np.random.default_rng(3))
    assert np.isnan(flat["d"]) and np.isnan(flat["z"])


def test_stouffer_combines_and_skips_undefined_stages():
    z, p = stouffer([2.0, 2.0, float("nan")])
    assert z == pytest.approx(4 / np.sqrt(2)) and p == pytest.approx(2 * norm.sf(4 / np.sqrt(2)))
    assert stouffer([-1.96])[1] == pytest.approx(0.05, abs=1e-3)  # two-sided
    assert all(np.isnan(stouffer([float("nan")])))


@pytest.fixture(scope="module")
def report():
    (Xtr, ytr), (Xv, yv), (Xe, ye) = planted(2.0)
    model = DLSA.from_config(FAST, random_state=0).fit(Xtr, ytr, X_val=Xv, y_val=yv)
    return model, diagnostics(model, Xe, ye, n_permutations=200), (Xe, ye)


def test_report_carries_the_companion_scores(report):
    model, rep, (Xe, ye) = report
    rows = rep["stages"]
    assert rows and np.isfinite(rep["separability_z"]) and 0 <= rep["separability_p"] <= 1
    for r in rows:
        assert r["somers_d_null_sd"] > 0
        assert r["somers_d_z"] == pytest.approx(
            (r["somers_d"] - r["somers_d_null_mean"]) / r["somers_d_null_sd"]
        )
        assert 0 <= r["cluster_coverage"] <= 1
        assert 0 <= r["cluster_eval_correct"] <= r["cluster_eval_covered"] <= r["n_active"]
    # the stage gains telescope: entropy left after the last stage minus the train set's
    left = rows[-1]["remaining_train_norm_entropy"]
    assert rep["balance_gain"] == pytest.approx(left - model.train_imbalance_["norm_entropy"])

    # stage 1's coverage: the share of eval samples whose cluster is a kept one, in the
    # mean over the stage's flows (each flow has its own clusters)
    st = model.stages_[0]
    clusters = model.trace(Xe).clusters[0]  # (R, N)
    each = [st.kept[r][clusters[r]].mean() for r in range(len(clusters))]
    assert rows[0]["cluster_coverage"] == pytest.approx(np.mean(each))
    # a kept cluster is one with purity > 0.7 among > 10 train samples (stage 1: all active)
    c = model.config_
    for h, kept_r in zip(st.hist, st.kept, strict=True):
        purity = h.max(1) / np.maximum(h.sum(1), 1)
        kept = (purity > c.purity_threshold) & (h.sum(1) > c.min_cluster_size)
        np.testing.assert_array_equal(kept_r, kept)
    again = diagnostics(model, Xe, ye, n_permutations=200)
    assert again["separability_z"] == rep["separability_z"]  # seeded
    with pytest.raises(ValueError, match="n_permutations"):
        diagnostics(model, Xe, ye, n_permutations=1)


def test_filtered_balance_and_signed_separability_from_the_routes():
    """filtered_balance is the mean over stages of H(train labels the stage filters)
    - H(train labels active at it), recomputed here from the train samples' routes
    (the filter applied again); separability_signed is the mean signed D."""
    (Xtr, ytr), (Xv, yv), (Xe, ye) = planted(2.0)
    model = DLSA.from_config(FAST, random_state=0).fit(Xtr, ytr, X_val=Xv, y_val=yv)
    rep = diagnostics(model, Xe, ye, n_permutations=50)
    C, route = model.num_classes_, model.route(Xtr)

    def entropy(labels):
        p = np.bincount(labels, minlength=C) / len(labels)
        p = p[p > 0]
        return float(-(p * np.log(p)).sum() / np.log(C))

    per_stage = [
        entropy(ytr[route == s]) - entropy(ytr[route >= s]) for s in range(len(model.stages_))
    ]
    assert len(per_stage) >= 2
    assert [r["filtered_balance"] for r in rep["stages"]] == pytest.approx(per_stage)
    assert rep["filtered_balance"] == pytest.approx(np.mean(per_stage))
    signed = [r["somers_d"] for r in rep["stages"]]
    assert rep["separability_signed"] == pytest.approx(np.mean(signed))
    assert rep["separability"] == pytest.approx(np.mean(np.abs(signed)))


@pytest.mark.parametrize(
    "p, evidence, verdict",
    [
        (0.3, Evidence.NONE, "no evidence of head/tail separation (p = 0.30)"),
        (0.012, Evidence.SEPARATED, "p = 0.012"),
        (1e-5, Evidence.SEPARATED, "p < 0.001"),
        (float("nan"), Evidence.UNDEFINED, "undefined"),
        (None, Evidence.UNDEFINED, "undefined"),
    ],
)
def test_report_verdict_on_the_null(p, evidence, verdict):
    """The row's evidence is decided from its p-value; the words only display it."""
    row = Row.of({"backbone": "b", "separability_p": p})
    assert row.evidence is evidence and separation_evidence(row).startswith(verdict)
