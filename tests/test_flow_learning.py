"""Issue 10: batch-norm recalibration, kept clusters before training, loss history,
the ``paper`` preset, and what the report says about the flow and the filter."""

from dataclasses import fields, replace

import numpy as np
import pytest
import torch

from lteval.dlsa import DLSA, DLSAConfig, diagnostics, preset
from lteval.dlsa.density import cluster_stats, recalibrate_bn, score
from lteval.dlsa.flow import GMF
from lteval.dlsa.train import fit_stage
from lteval.heads import LinearConfig
from lteval.report.render import dlsa_status


def _lt_blobs(seed: int = 0, D: int = 24, sep: float = 3.0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(6), [300, 150, 80, 40, 20, 10])
    X = rng.normal(size=(6, D))[y] * sep + rng.normal(size=(len(y), D))
    return torch.as_tensor(X.astype(np.float32)), torch.as_tensor(y)


def test_recalibrated_eval_mode_equals_full_batch_statistics():
    """After training on class-balanced pair batches the running statistics are off;
    recalibrated, eval mode normalises with the scored set's own statistics, which is
    what train mode computes from one batch holding the whole set."""
    X, y = _lt_blobs()
    cfg = DLSAConfig(num_clusters=12, flow_epochs=3, flow_batch_size=64, bn_recalibrate=False)
    model = fit_stage(X, y, cfg, 0).model
    with torch.no_grad():
        model.train()
        u_full, _ = model.flow(X)
        model.eval()
        u_running, _ = model.flow(X)
        recalibrate_bn(model, X, batch=97)  # uneven batches: the sums must still be exact
        u_recal, _ = model.flow(X)
    assert not torch.allclose(u_running, u_full, atol=1e-3)
    torch.testing.assert_close(u_recal, u_full, atol=1e-4, rtol=1e-4)


def test_history_records_the_three_losses_and_the_untrained_kept_clusters():
    X, y = _lt_blobs()
    cfg = DLSAConfig(num_clusters=12, flow_epochs=3, flow_batch_size=64, flow_seeds=2)
    fit = fit_stage(X, y, cfg, 5)
    assert len(fit.history) == 2
    for member in fit.history:
        assert [h["epoch"] for h in member] == [1, 2, 3]
        for h in member:
            assert all(np.isfinite(h[k]) for k in ("l_lh", "l_bal", "l_pur"))
            assert 0 <= h["l_bal"] <= np.log(12) + 1e-6  # log K - entropy
    # the untrained flows (same seed: same means and init) scored before any step
    fresh = GMF(X.shape[1], 12, None, cfg.prior_std, cfg.bn_momentum, 5, cfg.made_init_std, 2)
    expected = [cluster_stats(c.numpy(), y.numpy(), 12, cfg)[0] for c in score(fresh, X)[1]]
    assert fit.kept_clusters_initial == expected


def test_stage_rows_say_whether_the_flow_learned():
    X, y = _lt_blobs()
    Xn, yn = X.numpy(), y.numpy()
    cfg = DLSAConfig(
        num_clusters=12, flow_epochs=2, flow_batch_size=64, classifier=LinearConfig(epochs=3)
    )
    model = DLSA.from_config(cfg, random_state=0).fit(Xn, yn, X_val=Xn[::5], y_val=yn[::5])
    rows = diagnostics(model, Xn, yn)["stages"]
    assert rows
    for r, st in zip(rows, model.stages_, strict=True):  # the row reports the fitted flow
        assert (r["kept_clusters_initial"], r["kept_clusters"], r["flow_epoch"]) == (
            np.mean(st.gmf.kept_clusters_initial),
            np.mean(st.gmf.kept_clusters),
            int(np.median(st.gmf.epoch)),
        )
        assert r["flow_epochs"] == st.gmf.epoch and r["flows"] == cfg.flow_seeds
        assert isinstance(r["flow_learned"], bool)


def test_paper_preset_differs_from_the_default_only_where_the_docs_say():
    paper, default = preset("paper"), DLSAConfig()
    differ = {
        f.name for f in fields(DLSAConfig) if getattr(paper, f.name) != getattr(default, f.name)
    }
    assert differ == {
        "bn_recalibrate",
        "flow_grad_clip",
        "made_init_std",
        "flow_seeds",
        "flow_patience",
        "flow_epoch_samples",
        "hidden",
        "flow_lr",
        "flow_optimizer",
        "stage_check_fraction",
    }
    assert (paper.num_clusters, paper.flow_batch_size, paper.flow_lr, paper.prior_std) == (
        500,
        1024,
        0.2,
        0.05,
    )


def test_made_default_init_is_not_near_identity():
    X, _ = _lt_blobs()
    near = GMF(X.shape[1], 4, init_std=1e-3).flow.layers[0]
    torch.manual_seed(0)
    default = GMF(X.shape[1], 4, init_std=None).flow.layers[0]
    with torch.no_grad():
        assert (near(X)[0] - X).abs().max() < 0.1
        assert (default(X)[0] - X).abs().max() > 0.1


def test_optimizer_is_checked_and_sgd_trains():
    with pytest.raises(ValueError, match="flow_optimizer = 'rmsprop'; choose one of 'adam', "):
        DLSAConfig(flow_optimizer="rmsprop").validate()
    X, y = _lt_blobs()
    cfg = DLSAConfig(num_clusters=8, flow_epochs=2, flow_batch_size=64, flow_optimizer="sgd")
    fit = fit_stage(X, y, replace(cfg, flow_lr=0.02), 0)
    assert all(len(h) == 2 and np.isfinite(h[-1]["l_lh"]) for h in fit.history)


def test_divergence_note_survives_when_no_epoch_qualifies():
    """Each flow of the ensemble diverges on its own: flows that finished an epoch keep
    it with the note, flows that finished none are dropped; the rest score finitely."""
    X, y = _lt_blobs()
    cfg = DLSAConfig(
        num_clusters=8,
        flow_epochs=4,
        flow_batch_size=64,
        flow_optimizer="sgd",
        flow_lr=1.0,
        flow_grad_clip=None,
        max_cluster_size=1,  # no epoch can qualify
    )
    fit = fit_stage(X, y, cfg, 0)
    assert fit.dropped and fit.selection, "this setting must give both outcomes"
    assert len(fit.selection) + len(fit.dropped) == cfg.flow_seeds
    for sel, hist in zip(fit.selection, fit.history, strict=True):
        assert sel.startswith("last finished epoch") and "non-finite" in sel and hist
        assert all(np.isfinite(h["l_lh"]) for h in hist)
    assert fit.model.members == len(fit.selection)
    lp, _ = score(fit.model, X)
    assert lp.shape == (len(fit.selection), len(X)) and torch.isfinite(lp).all()


def test_report_notes_unlearned_stages_and_no_lift():
    rows = [
        {"backbone": "a", "lift_balanced": 0.02},
        {"backbone": "b", "lift_balanced": -0.01},
        {"backbone": "c", "lift_balanced": 0.0},
    ]
    stages = [
        {"backbone": "a", "stage": 1, "flow_learned": True},
        {"backbone": "a", "stage": 2, "flow_learned": False},
        {"backbone": "b", "stage": 1},  # results written before issue 10
    ]
    st = dlsa_status(rows, stages)
    assert st == {"unlearned": ["a stage 2"], "stages_known": 2, "no_lift": ["b", "c"]}


def test_stage_check_split_is_per_class_and_seeded():
    from lteval.dlsa.stages import check_split as _check_split

    y = np.repeat(np.arange(4), [40, 10, 3, 1])
    m = _check_split(y, 0.5, 3)
    assert [int(m[y == c].sum()) for c in range(4)] == [20, 5, 2, 0]
    np.testing.assert_array_equal(m, _check_split(y, 0.5, 3))
    assert not np.array_equal(m, _check_split(y, 0.5, 4))
    assert not _check_split(y, 0.0, 3).any()


def test_rejected_stages_are_labelled_by_the_regular_classifier():
    X, y = _lt_blobs(seed=1, sep=0.4)  # overlapping classes: no classifier is perfect
    Xn, yn = X.numpy(), y.numpy()
    cfg = DLSAConfig(
        num_clusters=12, flow_epochs=2, flow_batch_size=64, classifier=LinearConfig(epochs=5)
    )
    Xv, yv = Xn[::3] + 0.1, yn[::3]
    never = DLSA.from_config(replace(cfg, stage_check_margin_se=1e9), random_state=0).fit(
        Xn, yn, X_val=Xv, y_val=yv
    )
    assert never.stages_ and not any(st.accepted for st in never.stages_)
    np.testing.assert_array_equal(never.predict(Xn), never.predict_regular(Xn))
    rows = diagnostics(never, Xn, yn)["stages"]
    assert all(r["stage_check"].startswith("rejected") for r in rows)
    assert all(r["stage_classifier_used"] is False for r in rows)  # plain bool, JSON-safe
    always = DLSA.from_config(replace(cfg, stage_check_margin_se=-1e9), random_state=0).fit(
        Xn, yn, X_val=Xv, y_val=yv
    )
    assert any(st.accepted for st in always.stages_)
    assert all(st.accepted == st.check.startswith("accepted") for st in always.stages_)


def test_each_flow_of_the_ensemble_trains_as_the_lone_flow_of_its_seed():
    """Batching R flows shares nothing but the matmuls: flow r of a 3-flow stage is the
    one-flow stage of seed ``member_seeds(seed, 3)[r]`` (same epochs, same densities)."""
    from lteval.dlsa.flow import member_seeds

    X, y = _lt_blobs()
    cfg = DLSAConfig(num_clusters=12, flow_epochs=3, flow_batch_size=64, flow_seeds=3)
    ens = fit_stage(X, y, cfg, 7)
    lp_ens, cl_ens = score(ens.model, X)
    for r, s in enumerate(member_seeds(7, 3)):
        one = fit_stage(X, y, replace(cfg, flow_seeds=1), s)
        lp, cl = score(one.model, X)
        assert one.epoch == [ens.epoch[r]] and one.kept_clusters == [ens.kept_clusters[r]]
        torch.testing.assert_close(lp_ens[r], lp[0], rtol=1e-4, atol=1e-3)
        assert (cl_ens[r] == cl[0]).float().mean() > 0.99
    assert not torch.allclose(lp_ens[0], lp_ens[1])  # and the seeds differ
