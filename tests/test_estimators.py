"""DLSA and the heads as scikit-learn estimators: parameters stored unchanged and
checked at fit, clone / get_params, NotFittedError, and local randomness."""

import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from lteval.dlsa import DLSA, DLSAConfig, diagnostics, fit_stage
from lteval.dlsa.train import training_dtype
from lteval.heads import (
    CRT,
    KNN,
    LWS,
    NCM,
    BalancedSoftmaxProbe,
    LinearConfig,
    LinearProbe,
    LogitAdjusted,
    TauNorm,
    balanced_accuracy,
    train_balanced_softmax,
)
from lteval.seeds import derive_seed, seeded_torch

LIN = LinearConfig(epochs=4, lr_grid=None)
CFG = DLSAConfig(num_clusters=6, num_stages=2, flow_epochs=2, flow_batch_size=64, classifier=LIN)


def _data(seed: int = 0):
    """Long-tailed Gaussian blobs: train (225), validation (40), eval (80); 4 classes, 6-d."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(4, 6)) * 2

    def draw(counts):
        y = np.repeat(np.arange(4), counts)
        return (centers[y] + rng.normal(size=(len(y), 6))).astype(np.float32), y

    return draw([120, 60, 30, 15]), draw([10] * 4), draw([20] * 4)


(XTR, YTR), (XV, YV), (XE, YE) = _data()

ESTIMATORS = [
    DLSA.from_config(CFG, random_state=3),
    LinearProbe.from_config(LIN, random_state=3),
    BalancedSoftmaxProbe.from_config(LIN, random_state=3),
    LogitAdjusted.from_config(LIN, random_state=3),
    CRT.from_config(LIN, random_state=3),
    TauNorm.from_config(LIN, random_state=3),
    LWS.from_config(LIN, random_state=3),
    NCM(metric="euclidean"),
    KNN(ks=(1, 3)),
]
SEEDED = [e for e in ESTIMATORS if "random_state" in e.get_params() and not isinstance(e, KNN)]
"""The estimators with trained weights (KNN's seed only splits validation off train)."""


def _ids(est) -> str:
    return type(est).__name__


def _fit(est):
    return est.fit(XTR, YTR, X_val=XV, y_val=YV, classes=np.arange(4))


@pytest.mark.parametrize("est", ESTIMATORS, ids=_ids)
def test_clone_and_get_params_round_trip(est):
    params = est.get_params()
    twin = clone(est)
    assert type(twin) is type(est) and twin is not est
    assert twin.get_params() == params  # settings dataclasses compare by value
    if "classifier" in params:
        assert twin.classifier is not est.classifier  # clone copies, never shares, settings
    assert twin.set_params(**params) is twin and twin.get_params() == params


@pytest.mark.parametrize("est", ESTIMATORS, ids=_ids)
def test_inference_before_fit_raises_not_fitted(est):
    est = clone(est)
    with pytest.raises(NotFittedError):
        est.predict(XE)
    with pytest.raises(NotFittedError):
        est.score(XE, YE)
    fitted = _fit(clone(est))
    check_is_fitted(fitted)
    with pytest.raises(NotFittedError):  # a clone of a fitted estimator is unfitted
        clone(fitted).predict(XE)
    assert fitted.score(XE, YE) == balanced_accuracy(YE, fitted.predict(XE))


@pytest.mark.parametrize("est", ESTIMATORS, ids=_ids)
def test_labels_of_any_kind_give_the_same_fit(est):
    """String or negative labels: classes_ is their sorted set, predictions are labels,
    and the fit is the one on indices (same order, same seed)."""
    names = np.array(["ant", "bee", "cat", "dog"])
    ints = _fit(clone(est)).predict(XE)
    for labels in (names, np.array([-7, -2, 0, 5])):
        fitted = clone(est).fit(XTR, labels[YTR], X_val=XV, y_val=labels[YV])
        np.testing.assert_array_equal(fitted.classes_, labels)
        np.testing.assert_array_equal(fitted.predict(XE), labels[ints])
        assert fitted.score(XE, labels[YE]) == balanced_accuracy(YE, ints)
    if isinstance(est, DLSA):
        rep = diagnostics(fitted, XE, labels[YE], n_permutations=20)
        assert rep["accuracy"]["balanced"] == pytest.approx(balanced_accuracy(YE, ints))
        with pytest.raises(ValueError, match=r"labels that are not classes: \[9\]"):
            diagnostics(fitted, XE[:2], np.array([9, -7]), n_permutations=20)
    # classes= names a class absent from y: it exists, and is never predicted
    wide = clone(est).fit(XTR, YTR, X_val=XV, y_val=YV, classes=np.arange(6))
    assert len(wide.classes_) == 6 and not np.isin(wide.predict(XE), [4, 5]).any()
    with pytest.raises(ValueError, match=r"labels that are not classes: \[3\]"):
        clone(est).fit(XTR, YTR, X_val=XV, y_val=YV, classes=[0, 1, 2])


def test_dlsa_inference_and_diagnostics_before_fit_raise_not_fitted():
    model = DLSA.from_config(CFG)
    for call in (model.route, model.predict_regular, model.trace):
        with pytest.raises(NotFittedError):
            call(XE)
    with pytest.raises(NotFittedError):
        diagnostics(model, XE, YE)


def test_init_stores_parameters_unchanged():
    model = DLSA(rho=2.0, flow_autocast="bf16", random_state=-1)  # nothing checked here
    assert model.rho == 2.0 and model.flow_autocast == "bf16" and model.random_state == -1
    assert DLSA().classifier is None and DLSA().get_params()["num_stages"] == 3
    assert DLSA.from_config(CFG).classifier == CFG.classifier
    crt = CRT.from_config(replace(LIN, sampling="instance"))
    assert "sampling" not in crt.get_params()  # CRT's sampling is its definition
    assert _fit(crt).config_.sampling == "class-balanced"


def test_parameters_are_flat_and_mirror_the_settings_dataclasses():
    """Every DLSAConfig / LinearConfig setting is a parameter of its own, with the
    dataclass's default, so set_params and GridSearchCV reach each one."""
    dlsa = DLSA().get_params(deep=False)
    assert set(dlsa) == set(DLSAConfig.__dataclass_fields__) | {"random_state"}
    assert all(dlsa[k] == v for k, v in DLSAConfig().get_params().items() if k != "classifier")
    probe = LinearProbe().get_params()
    lin = LinearConfig().get_params()
    assert set(probe) == set(lin) - {"warm_start_margin_se"} | {"random_state"}
    assert all(probe[k] == lin[k] for k in probe if k in lin)
    post = set(TauNorm().get_params()) - set(probe)
    assert post == {"probe", "validation_fraction"}
    with pytest.raises(TypeError, match="config"):
        DLSA(config=CFG)  # the old opaque parameter is gone, loudly
    with pytest.raises(TypeError):
        LinearProbe(LIN)  # parameters are keyword-only


def test_set_params_then_fit_uses_the_new_values():
    model = _fit(DLSA.from_config(CFG).set_params(random_state=5, num_stages=1))
    assert model.seed_ == 5 and model.config_.num_stages == 1 and len(model.stages_) <= 1
    model = _fit(DLSA.from_config(CFG).set_params(classifier__epochs=2, rho=0.5))
    assert model.config_.classifier.epochs == 2 and model.config_.rho == 0.5
    assert CFG.classifier.epochs == 4  # from_config copied the settings
    probe = _fit(LinearProbe.from_config(LIN).set_params(epochs=2))
    assert probe.config_.epochs == 2 and probe.head_.best_epoch <= 2


def test_grid_search_reaches_each_hyper_parameter():
    from sklearn.model_selection import GridSearchCV

    grid = GridSearchCV(LinearProbe.from_config(LIN), {"lr": [1e-2, 1e-1]}, cv=2).fit(XTR, YTR)
    assert grid.best_params_["lr"] in (1e-2, 1e-1) and len(grid.cv_results_["params"]) == 2
    nested = GridSearchCV(
        DLSA.from_config(replace(CFG, num_stages=1)), {"classifier__lr": [1e-2, 1e-1]}, cv=2
    ).fit(XTR, YTR)
    assert nested.best_estimator_.config_.classifier.lr in (1e-2, 1e-1)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: DLSA.from_config(replace(CFG, flow_autocast="bf16")), "flow_autocast = 'bf16'"),
        (lambda: DLSA.from_config(replace(CFG, flow_optimizer="Adam")), "flow_optimizer = 'Adam'"),
        (lambda: DLSA(classifier=replace(LIN, sampling="balanced")), "sampling"),
        (lambda: DLSA.from_config(replace(CFG, rho=1.5)), "rho"),
        (lambda: DLSA(classifier={"lr": 0.3}), "classifier = {'lr': 0.3} takes LinearConfig"),
        (lambda: DLSA.from_config(CFG, random_state=-1), "random_state"),
        (lambda: DLSA.from_config(CFG, random_state=None), "random_state"),
        (lambda: DLSA.from_config(CFG, random_state=1.5), "random_state"),
        (lambda: LinearProbe(sampling="class_balanced"), "sampling"),
        (lambda: CRT(epochs=0.5), "epochs = 0.5 takes an integer"),
        (lambda: LWS(optimizer="adamw"), "optimizer"),
        (lambda: TauNorm.from_config(LIN, random_state="0"), "random_state"),
        (lambda: NCM(metric="manhattan"), "metric"),
        (lambda: KNN(ks=()), "ks"),
    ],
)
def test_bad_parameters_raise_at_fit_naming_them(make, match):
    est = make()  # construction never raises
    with pytest.raises(ValueError, match=match):
        _fit(est)


def test_typo_in_a_string_option_is_an_error_below_the_estimators_too():
    with pytest.raises(ValueError, match="sampling = 'class_balanced'"):
        train_balanced_softmax(XTR, YTR, 4, config=replace(LIN, sampling="class_balanced"))
    with pytest.raises(ValueError, match="flow_autocast = 'bf16'"):
        training_dtype(replace(CFG, flow_autocast="bf16"))  # was: silently "auto"
    with pytest.raises(ValueError, match="flow_autocast"):
        fit_stage(torch.as_tensor(XTR), torch.as_tensor(YTR), replace(CFG, flow_autocast="f32"), 0)


@pytest.mark.parametrize("est", ESTIMATORS, ids=_ids)
def test_fit_leaves_the_global_random_states_unchanged(est):
    torch.manual_seed(1234)
    torch_before, seed_before = torch.get_rng_state(), torch.initial_seed()
    np_before = np.random.get_state()  # noqa: NPY002 (numpy's global state is the point)
    model = _fit(clone(est))
    if isinstance(model, DLSA):
        diagnostics(model, XE, YE, n_permutations=20)
    assert torch.equal(torch.get_rng_state(), torch_before)
    assert torch.initial_seed() == seed_before
    np_after = np.random.get_state()  # noqa: NPY002
    assert np_after[0] == np_before[0] and np.array_equal(np_after[1], np_before[1])
    assert np_after[2:] == np_before[2:]


def _head(model):
    """The trained linear head: DLSA's regular classifier, or the probe's head."""
    return (model.regular_ if isinstance(model, DLSA) else model.head_).module


@pytest.mark.parametrize("est", SEEDED, ids=_ids)
def test_same_random_state_same_output_whatever_the_global_state(est):
    torch.manual_seed(0)
    a = _fit(clone(est))
    torch.manual_seed(1)
    torch.rand(7)
    b = _fit(clone(est))
    np.testing.assert_array_equal(a.predict(XE), b.predict(XE))
    wa, wb = _head(a).state_dict(), _head(b).state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    if isinstance(est, DLSA):  # and the same flows, routes and diagnostics
        np.testing.assert_array_equal(a.route(XE), b.route(XE))
        da, db = (diagnostics(m, XE, YE, n_permutations=50) for m in (a, b))
        np.testing.assert_equal(da["separability_z"], db["separability_z"])
        for lp_a, lp_b in zip(da["log_density"], db["log_density"], strict=True):
            np.testing.assert_array_equal(lp_a, lp_b)
    # the seed reaches the initialisation: another random_state, other weights
    other = _fit(clone(est).set_params(random_state=4))
    assert not torch.equal(_head(a).fc.weight, _head(other).fc.weight)


def test_seeded_init_equals_global_seeding_with_the_derived_seed():
    """``seeded_torch(s, "init")`` builds the module ``torch.manual_seed`` of the
    derived seed builds, and leaves the caller's global generator as it was."""
    torch.manual_seed(77)
    before = torch.get_rng_state()
    with seeded_torch(5, "init"):
        ours = torch.nn.Linear(6, 4)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(derive_seed(5, "init"))
    former = torch.nn.Linear(6, 4)
    assert torch.equal(ours.weight, former.weight) and torch.equal(ours.bias, former.bias)


def test_trace_agrees_with_predict_and_route():
    model = _fit(DLSA.from_config(CFG, random_state=1))
    t = model.trace(XE)
    np.testing.assert_array_equal(t.predictions, model.predict(XE))
    np.testing.assert_array_equal(t.route, model.route(XE))
    assert len(t.log_density) == len(t.clusters) == len(model.stages_)
    assert t.features.shape == XE.shape


def test_balanced_accuracy_keeps_its_semantics_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn warns on both cases below; we must not
        # classes 2 and 3 are predicted but absent from y_true: they do not count
        y, p = np.array([0, 0, 1, 1, 1]), np.array([0, 2, 1, 1, 3])
        assert balanced_accuracy(y, p) == pytest.approx((1 / 2 + 2 / 3) / 2)
        assert balanced_accuracy(np.array([2, 2]), np.array([2, 2])) == 1.0  # one class
        assert balanced_accuracy(np.array([2, 2]), np.array([0, 2])) == 0.5
    assert np.isnan(balanced_accuracy(np.array([], int), np.array([], int)))
    rng = np.random.default_rng(0)
    for C in (3, 40):  # bitwise equal to the per-class loop it replaced
        y, p = rng.integers(0, C, 500), rng.integers(0, C + 2, 500)
        loop = float(np.mean([np.mean(p[y == c] == c) for c in np.unique(y)]))
        assert balanced_accuracy(y, p) == loop


@pytest.mark.parametrize("cls", [LogitAdjusted, TauNorm, LWS])
def test_a_post_hoc_head_on_a_shared_probe_equals_one_on_its_own(cls):
    (X, y), (Xv, yv), (Xe, _) = _data()
    cfg = LinearConfig(epochs=5, lr_grid=None)
    probe = LinearProbe.from_config(cfg, random_state=3).fit(X, y, X_val=Xv, y_val=yv)
    own = cls.from_config(cfg, random_state=3).fit(X, y, X_val=Xv, y_val=yv)
    shared = cls.from_config(cfg, random_state=3, probe=probe).fit(X, y, X_val=Xv, y_val=yv)
    assert shared.head_ is probe.head_  # reused, not retrained
    np.testing.assert_array_equal(own.predict(Xe), shared.predict(Xe))
    with pytest.raises(ValueError, match="fitted on other training data"):
        cls.from_config(cfg, probe=probe).fit(X[:-5], y[:-5], X_val=Xv, y_val=yv)
    other = BalancedSoftmaxProbe.from_config(cfg).fit(X, y, X_val=Xv, y_val=yv)
    with pytest.raises(ValueError, match="probe must be a fitted LinearProbe"):
        cls.from_config(cfg, probe=other).fit(X, y, X_val=Xv, y_val=yv)


def test_a_prefit_probe_needs_the_validation_it_was_not_trained_on():
    probe = LinearProbe.from_config(LIN).fit(XTR, YTR, X_val=XV, y_val=YV)
    with pytest.raises(ValueError, match="probe= reuses a probe fitted on all of train"):
        TauNorm.from_config(LIN, probe=probe).fit(XTR, YTR)


def test_knn_names_ks_when_every_k_exceeds_the_train_size():
    with pytest.raises(ValueError, match=r"ks = \(50,\): every k exceeds"):
        KNN(ks=(50,)).fit(XTR[:20], YTR[:20], X_val=XV, y_val=YV)


def test_a_row_equals_the_mapping_it_was_built_from():
    from lteval.rank import Row, Status

    d = {"backbone": "b", "status": "failed", "error": "x"}
    row = Row.of(d)
    assert row == d and dict(row) == {**d, "status": Status.FAILED} and not row.ok
    assert repr(row).startswith("Row(backbone='b'") and "MISSING" not in repr(row)
