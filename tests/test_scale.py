"""Costs that stop growing with N: the flows' and linear heads' epoch caps, and the
flows' early stop on a flat criterion (issue 23)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from lteval.dlsa import DLSAConfig
from lteval.dlsa import train as T
from lteval.dlsa.density import score
from lteval.heads import LinearConfig
from lteval.heads.linear import _Rows, train_balanced_softmax

SMALL = DLSAConfig(num_clusters=8, flow_batch_size=64, flow_seeds=2, hidden=16)


def blobs(n: int = 600, C: int = 4, D: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    X = rng.normal(size=(C, D))[y] * 3 + rng.normal(size=(n, D))
    X = (X - X.mean(0)) / X.std(0)
    return torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y)


def test_a_flat_criterion_stops_after_patience_and_keeps_the_last_tie():
    X, y = blobs()
    # no cluster can be kept: the criterion is 0 at every epoch (a tie, never a gain)
    cfg = replace(SMALL, flow_epochs=30, flow_patience=3, min_cluster_size=10**6)
    fit = T.fit_stage(X, y, cfg, seed=0)
    assert fit.epochs_run == 4  # best at epoch 1, then 3 epochs without a strict gain
    assert fit.epoch == [4, 4] and fit.kept_clusters == [0, 0]
    assert all("patience 3" in s for s in fit.selection)


def test_an_epoch_cap_above_n_changes_nothing():
    X, y = blobs()
    cfg = replace(SMALL, flow_epochs=3, flow_patience=None)
    a = T.fit_stage(X, y, replace(cfg, flow_epoch_samples=None), seed=1)
    b = T.fit_stage(X, y, replace(cfg, flow_epoch_samples=len(y)), seed=1)
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    assert a.history == b.history


def test_an_epoch_cap_below_n_bounds_the_pairs_and_scores_a_subset(monkeypatch):
    X, y = blobs(n=1000)
    pairs, scored = [], []
    real_next, real_score = T._Batches.next, T.score

    def count_next(self, n):
        pairs.append(n)
        return real_next(self, n)

    def count_score(model, X, *a, **kw):
        scored.append(len(X))
        return real_score(model, X, *a, **kw)

    monkeypatch.setattr(T._Batches, "next", count_next)
    monkeypatch.setattr(T, "score", count_score)
    cfg = replace(SMALL, flow_epochs=2, flow_patience=None, flow_epoch_samples=200)
    fit = T.fit_stage(X, y, cfg, seed=0)
    assert sum(pairs) == 2 * 200 and max(pairs) == 64  # 200 pairs an epoch, batches of 64
    assert set(scored) == {200}  # the untrained flows and each epoch: the check subset
    # the chosen epoch's batch-norm statistics are those of every active row again
    import copy

    exact = copy.deepcopy(fit.model)
    before = {k: v.clone() for k, v in exact.state_dict().items() if "running" in k}
    score(exact, X, recalibrate=True)
    for k, v in before.items():
        torch.testing.assert_close(v, exact.state_dict()[k])


def test_the_check_subset_scales_the_cluster_size_limits():
    X, y = blobs(n=1000)
    check = T._Check(X, y, replace(SMALL, flow_epoch_samples=250), seed=3)
    assert check.subset and len(check.y) == 250 == len(check.X) == check.epoch_pairs
    assert check.cfg.min_cluster_size == SMALL.min_cluster_size / 4
    assert check.cfg.max_cluster_size == SMALL.max_cluster_size / 4
    again = T._Check(X, y, replace(SMALL, flow_epoch_samples=250), seed=3)
    assert torch.equal(check.X, again.X)  # seeded: the same rows every time


@pytest.mark.parametrize("sampling", ["instance", "class-balanced"])
def test_capped_linear_epochs_walk_through_whole_permutations(sampling):
    y = torch.as_tensor(np.repeat(np.arange(3), [50, 30, 20]))
    cfg = LinearConfig(epoch_samples=40, sampling=sampling)
    rows = _Rows(y, 3, cfg, torch.Generator().manual_seed(0))
    epochs = [rows.next() for _ in range(5)]  # 200 rows: exactly two full orders
    assert all(len(e) == 40 for e in epochs)
    if sampling == "instance":
        both = torch.cat(epochs)
        assert sorted(both[:100].tolist()) == list(range(100))
        assert sorted(both[100:].tolist()) == list(range(100))
    uncapped = _Rows(y, 3, replace(cfg, epoch_samples=None), torch.Generator().manual_seed(0))
    assert len(uncapped.next()) == 100


def test_a_linear_epoch_cap_above_n_changes_nothing():
    X, y = blobs(n=300)
    X, y = X.numpy(), y.numpy()
    kw = dict(X_val=X[:80], y_val=y[:80], seed=2)
    a = train_balanced_softmax(X, y, 4, config=LinearConfig(epochs=5, epoch_samples=None), **kw)
    b = train_balanced_softmax(X, y, 4, config=LinearConfig(epochs=5, epoch_samples=300), **kw)
    assert a.history == b.history and a.best_epoch == b.best_epoch
    c = train_balanced_softmax(X, y, 4, config=LinearConfig(epochs=5, epoch_samples=100), **kw)
    assert len(c.history) == 5 and c.history != a.history


def test_epoch_caps_are_checked():
    with pytest.raises(ValueError, match="flow_epoch_samples"):
        replace(DLSAConfig(), flow_epoch_samples=1).validate()
    with pytest.raises(ValueError, match="epoch_samples"):
        LinearConfig(epoch_samples=0).validate()
