import numpy as np
import pytest

from lteval.data import carve_validation, long_tailed_counts, make_long_tailed_splits


def test_counts_follow_exponential_profile():
    counts = long_tailed_counts(500, 100, 10)
    assert counts[0] == 500 and counts[-1] == 5
    expected = np.floor(500 * 100 ** (-np.arange(10) / 9) + 1e-9)
    np.testing.assert_array_equal(counts, expected)
    assert np.all(np.diff(counts) <= 0)


def test_counts_reject_bad_parameters():
    with pytest.raises(ValueError, match="imbalance_factor"):
        long_tailed_counts(10, 0.5, 3)
    with pytest.raises(ValueError, match="num_classes"):
        long_tailed_counts(10, 10, 0)


def _labels(per_class=60, C=6):
    return np.repeat(np.arange(C), per_class)


def test_splits_are_balanced_long_tailed_disjoint_and_seeded():
    y = _labels()
    s = make_long_tailed_splits(y, imbalance_factor=10, eval_per_class=10, n_max=50, seed=3)
    assert np.all(np.bincount(y[s.eval]) == 10)
    tv = np.concatenate([s.train, s.val])
    per_rank = np.bincount(y[tv], minlength=6)[s.class_order]
    np.testing.assert_array_equal(per_rank, long_tailed_counts(50, 10, 6))
    assert not set(s.train) & set(s.val) and not set(tv) & set(s.eval)
    again = make_long_tailed_splits(y, imbalance_factor=10, eval_per_class=10, n_max=50, seed=3)
    assert again.hash == s.hash
    np.testing.assert_array_equal(again.train, s.train)
    other = make_long_tailed_splits(y, imbalance_factor=10, eval_per_class=10, n_max=50, seed=4)
    assert other.hash != s.hash


def test_validation_is_stratified_and_keeps_a_train_sample():
    y = np.array([0] * 50 + [1] * 10 + [2] * 1)
    rng = np.random.default_rng(0)
    tr, va = carve_validation(np.arange(len(y)), y, 0.2, rng)
    assert np.bincount(y[va], minlength=3).tolist() == [10, 2, 0]
    assert np.bincount(y[tr], minlength=3).tolist() == [40, 8, 1]


def test_eval_per_class_too_large_is_rejected():
    with pytest.raises(ValueError, match="eval_per_class"):
        make_long_tailed_splits(_labels(5), imbalance_factor=2, eval_per_class=5)
