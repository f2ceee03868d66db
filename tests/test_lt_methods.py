"""The long-tailed training methods of the small CNN (issue 25's lt-methods panel):
each loss against its paper's formula, and the panel's cached features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from lteval.backbones.lt_losses import (
    METHODS,
    Objective,
    drw_weights,
    epoch_order,
    ldam_margins,
    supcon,
)
from lteval.backbones.small_cnn import SmallCNNConfig, train_cnn

COUNTS = torch.tensor([400, 100, 25, 4])


def test_ldam_margins_and_drw_weights_follow_their_formulas():
    m = ldam_margins(COUNTS)
    expect = COUNTS.double() ** -0.25
    np.testing.assert_allclose(m, (expect * 0.5 / expect.max()).float(), rtol=1e-6)
    assert m.max() == pytest.approx(0.5) and (m.diff() > 0).all()  # rarer: larger margin
    w = drw_weights(COUNTS)
    eff = (1 - 0.9999) / (1 - 0.9999 ** COUNTS.double())
    np.testing.assert_allclose(w, (eff / eff.sum() * 4).float(), rtol=1e-6)


def test_each_objective_is_its_papers_formula():
    gen = torch.Generator().manual_seed(0)
    z, y = torch.randn(8, 4, generator=gen), torch.tensor([0, 1, 2, 3, 0, 0, 1, 3])
    bs = Objective("balanced-softmax", COUNTS, 10)(z, y, 0)
    assert bs == pytest.approx(F.cross_entropy(z + torch.log(COUNTS.float()), y).item())
    la = Objective("logit-adjusted", COUNTS, 10)(z, y, 0)
    assert la == pytest.approx(bs.item(), abs=1e-5)  # tau = 1: a constant shift apart
    assert Objective("ce", COUNTS, 10)(z, y, 0) == pytest.approx(F.cross_entropy(z, y).item())
    ldam = Objective("ldam-drw", COUNTS, 10)
    shifted = z - 30 * F.one_hot(y, 4) * ldam_margins(COUNTS)[y, None]
    assert ldam(z, y, 7) == pytest.approx(F.cross_entropy(shifted, y).item())  # before DRW
    drw = F.cross_entropy(shifted, y, weight=drw_weights(COUNTS))
    assert ldam(z, y, 8) == pytest.approx(drw.item())  # DRW from 80% of 10 epochs
    with pytest.raises(ValueError, match="method = 'focal'"):
        Objective("focal", COUNTS, 10)


def test_supcon_is_low_when_classes_cluster_and_high_when_they_mix():
    y = torch.tensor([0, 0, 1, 1])
    apart = F.normalize(torch.tensor([[1.0, 0], [1, 0.01], [0, 1], [0.01, 1]]), dim=1)
    mixed = F.normalize(torch.tensor([[1.0, 0], [0, 1], [1, 0.01], [0.01, 1]]), dim=1)
    assert supcon(apart, y) < 0.01 < 5 < supcon(mixed, y)
    assert supcon(apart, torch.arange(4)) == 0  # no anchor has a positive: no loss, no NaN
    # by hand: anchors 0 and 1 are each other's one positive; -log softmax over the
    # other three samples at it, averaged over the two anchors (2 and 3 have none)
    z = F.normalize(torch.randn(4, 3, generator=torch.Generator().manual_seed(1)), dim=1)
    sim = z @ z.T / 0.1
    by_hand = [
        -(sim[i, j] - torch.logsumexp(sim[i, [k for k in range(4) if k != i]], 0))
        for i, j in ((0, 1), (1, 0))
    ]
    assert supcon(z, torch.tensor([0, 0, 1, 2])) == pytest.approx(np.mean(by_hand), rel=1e-5)


def test_class_balanced_sampling_evens_the_classes():
    y = torch.repeat_interleave(torch.arange(4), COUNTS)
    order = epoch_order(y, "cb-sampling", torch.Generator().manual_seed(0))
    seen = torch.bincount(y[order], minlength=4).float() / len(y)
    assert len(order) == len(y) and (seen - 0.25).abs().max() < 0.05
    assert sorted(epoch_order(y, "ce", torch.Generator()).tolist()) == list(range(len(y)))


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_the_cnn_from_its_seed(method):
    gen = torch.Generator().manual_seed(0)
    y = torch.repeat_interleave(torch.arange(3), torch.tensor([40, 12, 4]))
    x = torch.randn(len(y), 1, 28, 28, generator=gen) + y[:, None, None, None].float()
    cfg = SmallCNNConfig(epochs=2, batch=16, width=32, method=method)
    a, b = (train_cnn(x, y, 3, 5, cfg) for _ in range(2))
    fa, fb = a.features(x[:6]), b.features(x[:6])
    assert fa.shape == (6, 32) and torch.equal(fa, fb)  # seeded: the same network
    assert (a.project is not None) == (method == "supcon") and a.cosine == (method == "ldam-drw")


def test_lt_members_are_parsed_and_their_features_cached(isolated_caches, monkeypatch):
    from lteval.data import load_dataset
    from lteval.errors import UsageError
    from lteval.features import RunOptions
    from lteval.study import panels as panel
    from lteval.study.panels import LT_SEEDS, member_features, panels, parse_member

    monkeypatch.setattr(panel, "LT_EPOCHS", 1)  # a short training: this checks the cache

    lt = panels()["lt-methods"]
    assert len(lt.members) == len(METHODS) * len(LT_SEEDS) == 18
    assert set(lt.splits) == {"animal-mnist-lt", "fashion-mnist-lt"}
    _, _, cfg, offset = parse_member("lt:ldam-drw:2")
    assert cfg.method == "ldam-drw" and offset == 2
    for bad in ("lt:focal:1", "lt:ce:1:junk", "lt:ce:01", "lt:ce:4294967296", "lt:ce"):
        with pytest.raises(UsageError, match="lt:METHOD:SEED"):
            parse_member(bad)
    ds = load_dataset("mnist5k-lt", seed=0)
    run = RunOptions(device=torch.device("cpu"))
    member = "lt:balanced-softmax:1"
    first, facts = member_features(member, ds, seed=0, input_size=None, run=run, progress=False)
    entries = list(isolated_caches.glob("lteval-cache/*/manifest.json"))

    def no_training(*a, **k):
        raise AssertionError("a cached member must not train again")

    monkeypatch.setattr(panel, "cnn_features", no_training)
    again, _ = member_features(member, ds, seed=0, input_size=None, run=run, progress=False)
    assert len(entries) == 1 and facts["method"] == "balanced-softmax" and facts["cnn_seed"] == 1
    for split in ("train", "val", "eval"):
        np.testing.assert_array_equal(first[split][0], again[split][0])
        np.testing.assert_array_equal(first[split][1], ds.labels[getattr(ds.splits, split)])
