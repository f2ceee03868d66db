"""The study's noise ceiling, test-retest and size-controlled tau (lteval.study.ceiling,
lteval.study.replicate) on rows whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import kendalltau

from lteval.study.ceiling import (
    partial_tau,
    replicate_taus,
    retest_taus,
    size_controlled,
    with_fractions,
)
from lteval.study.replicate import eval_halves


def _rows(n=8, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for d in ("a", "b"):
        for i in range(n):
            few = i / n
            rows.append(
                {
                    "dataset": d,
                    "truth_few": few,
                    "truth_few_a": few,
                    "truth_few_b": few + noise * rng.normal(),
                    "truth_balanced_a": few,
                    "truth_balanced_b": few,
                    "separability": few + 0.1 * rng.normal(),
                    "retest_separability": few + 0.1 * rng.normal(),
                    "num_params": 10 + i,
                }
            )
    return rows


def test_a_noiseless_replicate_has_tau_one_and_noise_lowers_it():
    perfect = {(r["dataset"], r["truth"]): r for r in replicate_taus(_rows(), n_boot=50, seed=0)}
    assert perfect[("pooled", "truth_few")]["weighted_tau"] == pytest.approx(1.0)
    assert perfect[("a", "truth_balanced")]["tau"] == pytest.approx(1.0)
    noisy = replicate_taus(_rows(noise=0.3), n_boot=50, seed=0)
    few = next(r for r in noisy if r["dataset"] == "pooled" and r["truth"] == "truth_few")
    assert few["weighted_tau"] < 0.9 and few["weighted_lo"] <= few["weighted_tau"]


def test_fractions_divide_by_the_ceiling_of_the_same_dataset_and_truth():
    corr = [{"dataset": "a", "truth": "truth_few", "weighted_tau": 0.4}]
    ceiling = [{"dataset": "a", "truth": "truth_few", "weighted_tau": 0.8}]
    (got,) = with_fractions(corr, ceiling)
    assert got["fraction_of_replicate"] == pytest.approx(0.5) and got["replicate_tau"] == 0.8
    (undefined,) = with_fractions(corr, [{**ceiling[0], "weighted_tau": -0.1}])
    assert math.isnan(undefined["fraction_of_replicate"])


def test_retest_reports_the_largest_move_per_dataset():
    rows = _rows()
    out = retest_taus(rows, ["separability"], n_boot=50, seed=0)
    a = next(r for r in out if r["dataset"] == "a")
    moves = [abs(r["separability"] - r["retest_separability"]) for r in rows if r["dataset"] == "a"]
    assert a["largest_move"] == pytest.approx(max(moves)) and a["truth"] == "retest"
    pooled = next(r for r in out if r["dataset"] == "pooled")
    assert pooled["largest_move"] >= a["largest_move"]


def kendall(a, b):
    return kendalltau(a, b).statistic


def test_partial_tau_removes_what_size_explains():
    rng = np.random.default_rng(0)
    z = rng.normal(size=400)
    s, t = z + 0.3 * rng.normal(size=400), z + 0.3 * rng.normal(size=400)
    assert kendall(s, t) > 0.5 and abs(partial_tau(s, t, z)) < 0.1  # both only follow size
    assert math.isnan(partial_tau(z, z + 1, z))  # size explains everything: undefined
    assert partial_tau(-s, t, z) == pytest.approx(-partial_tau(s, t, z))
    u = rng.normal(size=40)
    size = rng.normal(size=40)
    # score and truth share u, not size: partialling size out changes little
    got = partial_tau(u + 0.1 * rng.normal(size=40), u, size)
    assert got > 0.7
    assert math.isnan(partial_tau(u[:10], u[:10], np.ones(10)))  # constant size
    out = size_controlled(_rows(), ["separability"], ["truth_few"], n_boot=40, seed=0)
    assert {r["dataset"] for r in out} == {"a", "b", "pooled"}
    assert all(r["controls"] == "num_params" for r in out)


def test_eval_halves_split_every_class_in_two():
    y = np.repeat(np.arange(4), [10, 11, 2, 1])
    half = eval_halves(y, 0)
    assert half.dtype == bool and [int(half[y == c].sum()) for c in range(4)] == [5, 6, 1, 0]
    np.testing.assert_array_equal(half, eval_halves(y, 0))
    assert not np.array_equal(half, eval_halves(y, 1))
