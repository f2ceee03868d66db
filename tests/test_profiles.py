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


def test_one_hold_out_rule_draws_what_the_three_copies_drew():
    """``per_class_holdout`` replaced three copies (the carved validation of data,
    a head's own validation, DLSA's stage-check share); at the settings lteval uses
    each draws exactly what its copy drew (the copies, kept here as the reference),
    from the stream lteval.seeds derives for it."""
    import numpy as np

    from lteval.data import per_class_holdout
    from lteval.dlsa.stages import check_split
    from lteval.heads.inputs import carve_validation as head_holdout
    from lteval.seeds import derived_rng

    def old_loop(y, fraction, rng, keep_one):
        out = np.zeros(len(y), bool)
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            n = int(round(fraction * len(idx)))
            out[idx[: min(n, len(idx) - 1) if keep_one else n]] = True
        return out

    rng = np.random.default_rng(0)
    for trial in range(20):
        y = rng.integers(0, 7, rng.integers(5, 200))
        for f in (0.1, 0.2, 0.3, 0.5):
            ref = old_loop(y, f, derived_rng(trial, "validation"), True)
            if ref.any():
                np.testing.assert_array_equal(head_holdout(y, f, trial), ref)
            else:  # nothing to hold out: the head says so, as before
                with pytest.raises(ValueError, match="no validation sample"):
                    head_holdout(y, f, trial)
            ref = old_loop(y, f, derived_rng(trial, "stage-check"), False)  # no keep-one ...
            np.testing.assert_array_equal(check_split(y, f, trial), ref)  # ... same at <= 0.5
            idx = np.flatnonzero(y >= 0)
            old_train, old_val = [], []
            r = np.random.default_rng(trial)
            for c in np.unique(y):
                p = r.permutation(idx[y == c])
                n = min(int(round(f * len(p))), len(p) - 1)
                old_val.append(p[:n])
                old_train.append(p[n:])
            tr, va = carve_validation(idx, y, f, np.random.default_rng(trial))
            np.testing.assert_array_equal(va, np.sort(np.concatenate(old_val)))
            np.testing.assert_array_equal(tr, np.sort(np.concatenate(old_train)))
    assert not check_split(np.arange(6) % 2, 0.0, 1).any()  # 0: no check
    one = per_class_holdout(np.array([0, 1, 1]), 0.9, np.random.default_rng(0))
    assert one.tolist()[0] is False and one[1:].sum() == 1  # each class keeps one
