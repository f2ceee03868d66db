"""The DLSA estimator: progressive GMF filtering with stage classifiers.

``DLSA(num_stages=3, ..., random_state=0).fit(X_train, y_train, X_val=..., y_val=...)``
(or ``DLSA.from_config(config)``) then ``predict``, ``route``, ``trace``;
``lteval.dlsa.diagnostics`` reports the stages and the separability score. DLSA is a
scikit-learn estimator: its parameters are ``DLSAConfig``'s settings, flat and
keyword-only (``classifier`` a ``LinearConfig``, reachable as ``classifier__lr``
once set), stored unchanged by ``__init__`` and checked at ``fit`` (ValueError
naming a bad setting); ``clone``, ``get_params``, ``set_params`` and ``GridSearchCV``
work; labels may be any sortable kind (``classes_``); inference before ``fit``
raises ``NotFittedError``.
Choices the method page leaves open, made here:

- Features are z-scored per dimension with train statistics before the flow and
  the classifiers (the prior's unit-variance components assume unit scale).
- The regular classifier is trained first, on the whole train split with Balanced
  Softmax, its epoch chosen on the whole validation split: it is exactly the
  Balanced-Softmax probe, so DLSA's lift over the probe is the filtering's effect.
- ``warm_start`` (default): each stage classifier starts from the regular one
  (``Linear(x)`` copied, ``Linear([x; P])`` zero) and its untrained state is an
  epoch-0 candidate for validation, so a stage specialises the probe to its subset
  only as far as its validation samples support. Classes absent from the stage's
  train subset keep the regular classifier's weights (Balanced Softmax gives them
  no gradient). Without it, a stage classifier starts from scratch and predicts
  only the classes present in its subset (the paper's label-space mapping).
  A trained epoch must beat the starting point by one standard error of the
  stage's validation balanced accuracy (``LinearConfig.warm_start_margin_se``).
  Measured on the CIFAR-100-LT-shaped benchmark (``make benchmark-dlsa``): from
  scratch, stage classifiers trained on 30% slices lost 14.6 points of balanced
  accuracy to the probe; warm-started with any validation gain accepted, 0.31
  points (small validation slices reward noise); with the one-SE rule, DLSA equals
  the probe there (0.6779 both), because that benchmark's filter carries no
  head/tail signal (many-vs-few AUROC about 0.5), so no stage earns a change.
- ``stage_check_fraction`` (default 0.5): that share of validation (per class,
  seeded) is held out from stage-classifier selection. A stage's classifier then
  labels the samples its stage claims only if, on the held-out samples the stage
  claims, it beats the regular classifier by ``stage_check_margin_se`` standard
  errors; otherwise the regular classifier labels them (``Stage.accepted``). On the
  replication benchmark without this check, stage classifiers cost up to 0.9
  points of balanced accuracy (mean of 3 seeds per split); with it, none was used
  and DLSA equals the probe; see docs/method.md.
- A stage runs only while the active train set holds at least two classes and
  at least 20 samples; when fewer stages run, ``len(stages_)`` says so.
- Clusters that no train sample reaches get a uniform prior vector.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from lteval.dlsa.config import DLSAConfig
from lteval.dlsa.separability import imbalance
from lteval.dlsa.stages import (
    Stage,
    Trace,
    check_split,
    ensemble,
    held_out_check,
    new_stage,
    stage_seed,
    top_quantile,
)
from lteval.dlsa.train import deterministic, fit_stage
from lteval.heads import (
    Standardizer,
    balanced_accuracy,
    train_balanced_softmax,
)
from lteval.heads.inputs import check_features, check_fit_input
from lteval.heads.linear import LinearConfig
from lteval.heads.params import settings
from lteval.seeds import check_random_state, derive_seed

MIN_STAGE_SAMPLES = 20


class DLSA(ClassifierMixin, BaseEstimator):
    """Progressive head/tail filtering on frozen features (see lteval.dlsa).

    Every parameter is a ``DLSAConfig`` setting (its docstring says why each
    default is what it is), stored unchanged and checked at ``fit``.

    Parameters
    ----------
    num_clusters : int, default=500
        K, the mixture components of each flow (>= 1).
    num_stages : int, default=3
        Filtering stages (>= 1).
    rho : float, default=0.3
        Share of the active train samples filtered at each stage, in (0, 1).
    flow_epochs, flow_batch_size, flow_lr : int, int, float, default=50, 1024, 1e-3
        Flow training: most epochs (>= 1), pairs per step (>= 2), learning rate (> 0).
    flow_optimizer : {"adam", "adam-per-tensor", "sgd"}, default="adam"
        The flows' optimiser (published: "sgd" at 0.2).
    flow_grad_clip : float or None, default=10.0
        Gradient-norm clip of each flow step (> 0); None is off.
    flow_autocast : {"float32", "bfloat16", "auto"}, default="float32"
        Matmul precision of flow training; scoring always runs in float32.
    flow_seeds : int, default=5
        R, the flows per stage, each from its own seed; their mixture is the density.
    flow_patience : int or None, default=10
        Stop a flow this many epochs after its last gain in kept clusters (>= 1).
    flow_epoch_samples : int or None, default=16384
        At most this many pairs per flow epoch, and rows read by its criterion (>= 2).
    hidden : int or None, default=64
        MADE width (>= 1); None is the feature dimension (the published width).
    lambda_lh, lambda_bal, lambda_pur, q : float, default=2.0, 1.0, 0.02, 2.0
        Loss weights (likelihood, balance, purity) and the likelihood class-weight
        exponent (each >= 0).
    prior_std : float, default=0.05
        Spread of the mixture's fixed-mean components (> 0).
    bn_momentum : float, default=0.9
        Batch-norm bijectors' running-statistics momentum, in [0, 1].
    bn_recalibrate : bool, default=True
        Set the batch-norm statistics to the active train set's after each epoch.
    made_init_std : float or None, default=1e-3
        Std of the MADE output layer's initial weights (> 0); None is torch's init.
    ema_momentum : float, default=0.7
        Momentum of the flow's weight average, in [0, 1].
    purity_threshold, min_cluster_size, max_cluster_size : float, int, int
        Epoch selection (defaults 0.7, 10, 5000): a cluster is kept above that
        purity and size; an epoch qualifies while its largest is below the maximum.
    classifier : LinearConfig or None, default=None
        The stage and regular classifiers' settings; None is ``LinearConfig()``.
    warm_start : bool, default=True
        Stage classifiers start from the regular one.
    stage_check_fraction : float, default=0.5
        Share of validation held out to check each stage's classifier, in [0, 1).
    stage_check_margin_se : float, default=1.0
        Standard errors a stage classifier must beat the regular one by.
    device : str, default="cpu"
        Where the flows train ("cuda" on a GPU machine).
    random_state : int, default=0
        Non-negative seed of the flows, the classifiers, the held-out split and the
        diagnostics' permutations; local generators only, so fitting leaves torch's
        and numpy's global random states unchanged.

    Attributes
    ----------
    config_, seed_ : DLSAConfig, int
        The checked settings and seed.
    classes_, n_features_in_, num_classes_, class_counts_, group_counts_, scaler_
        Labels (C,), width, C, train counts (C,), train + validation counts (C,),
        the train z-scoring. Class-indexed arrays follow ``classes_``.
    regular_, stages_, stopped_ : TrainedHead, list of Stage, str or None
        The Balanced-Softmax probe, the fitted stages, why fewer stages ran.
    train_routing_, train_imbalance_, remaining_train_imbalance_, filtered_train_imbalance_
        Per stage: the share of active train it filtered, and the imbalance of
        all train, of what is left active after it, and of what it filtered.
    """

    def __init__(
        self,
        *,
        num_clusters: int = 500,
        num_stages: int = 3,
        rho: float = 0.3,
        flow_epochs: int = 50,
        flow_batch_size: int = 1024,
        flow_lr: float = 1e-3,
        flow_optimizer: str = "adam",
        flow_grad_clip: float | None = 10.0,
        flow_autocast: str = "float32",
        flow_seeds: int = 5,
        flow_patience: int | None = 10,
        flow_epoch_samples: int | None = 16384,
        hidden: int | None = 64,
        lambda_lh: float = 2.0,
        lambda_bal: float = 1.0,
        lambda_pur: float = 0.02,
        q: float = 2.0,
        prior_std: float = 0.05,
        bn_momentum: float = 0.9,
        bn_recalibrate: bool = True,
        made_init_std: float | None = 1e-3,
        ema_momentum: float = 0.7,
        purity_threshold: float = 0.7,
        min_cluster_size: int = 10,
        max_cluster_size: int = 5000,
        classifier: LinearConfig | None = None,
        warm_start: bool = True,
        stage_check_fraction: float = 0.5,
        stage_check_margin_se: float = 1.0,
        device: str = "cpu",
        random_state: int = 0,
    ):
        self.num_clusters, self.num_stages, self.rho = num_clusters, num_stages, rho
        self.flow_epochs, self.flow_batch_size = flow_epochs, flow_batch_size
        self.flow_lr, self.flow_optimizer = flow_lr, flow_optimizer
        self.flow_grad_clip, self.flow_autocast = flow_grad_clip, flow_autocast
        self.flow_seeds, self.flow_patience = flow_seeds, flow_patience
        self.flow_epoch_samples, self.hidden = flow_epoch_samples, hidden
        self.lambda_lh, self.lambda_bal, self.lambda_pur = lambda_lh, lambda_bal, lambda_pur
        self.q, self.prior_std, self.bn_momentum = q, prior_std, bn_momentum
        self.bn_recalibrate, self.made_init_std = bn_recalibrate, made_init_std
        self.ema_momentum, self.purity_threshold = ema_momentum, purity_threshold
        self.min_cluster_size, self.max_cluster_size = min_cluster_size, max_cluster_size
        self.classifier, self.warm_start = classifier, warm_start
        self.stage_check_fraction = stage_check_fraction
        self.stage_check_margin_se = stage_check_margin_se
        self.device, self.random_state = device, random_state

    @classmethod
    def from_config(cls, config: DLSAConfig, random_state: int = 0) -> DLSA:
        """A DLSA with every setting of ``config`` (e.g. ``preset("paper")``), copied:
        ``set_params(classifier__lr=...)`` then never changes ``config``."""
        return cls(**copy.deepcopy(config).get_params(), random_state=random_state)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        X,
        y,
        *,
        X_val=None,
        y_val=None,
        classes=None,
        progress: Callable[[int, str], None] | None = None,
    ) -> DLSA:
        """X: (N, D) float train features, y: (N,) labels; X_val / y_val select the
        epochs and check the stages (without them no stage classifier is used);
        ``classes``: every class label (default: those of y and y_val).
        ``progress(n, what)``, if given, is called as flow epochs pass (n epochs each
        call, ``num_stages * flow_epochs`` in all when every stage runs; ``what`` names
        the stage).

        Bitwise reproducible on CPU for a given ``random_state`` (see
        ``train.deterministic``). ValueError naming the parameter or setting when
        one is invalid.
        """
        classifier = LinearConfig() if self.classifier is None else self.classifier
        cfg = settings(self, DLSAConfig, classifier=classifier)
        self.config_ = copy.deepcopy(cfg).validate()
        self.seed_ = check_random_state(self.random_state)
        X, y, X_val, y_val = check_fit_input(self, X, y, X_val, y_val, classes)
        if X_val is None:
            X_val, y_val = np.zeros((0, X.shape[1]), np.float32), np.zeros(0, np.int64)
        with deterministic(self.config_.device):
            return self._fit(X, y, X_val, y_val, progress)

    def _fit(self, X, y, X_val, y_val, progress) -> DLSA:
        cfg, seed0 = self.config_, self.seed_
        C = self.num_classes_ = len(self.classes_)
        self.class_counts_ = np.bincount(y, minlength=C)
        # the full long-tailed train counts (train + carved validation): shot groups
        self.group_counts_ = self.class_counts_ + np.bincount(y_val, minlength=C)
        self.scaler_ = Standardizer().fit(X)
        Xs, Xv = self.scaler_.transform(X), self.scaler_.transform(X_val)
        Xt = torch.as_tensor(Xs)
        if progress:  # it can take minutes at scale: say so before the first flow epoch
            progress(0, "regular classifier")
        self.regular_ = train_balanced_softmax(
            Xs, y, C, X_val=Xv, y_val=y_val, config=cfg.classifier, seed=seed0
        )
        # stage classifiers start from the regular one, at the learning rate it chose on
        # the whole validation split (a stage's own validation subset is a fraction of
        # it; a grid per stage also doubled the cost of the costliest heads at C = 1000)
        stage_config = replace(cfg.classifier, lr=self.regular_.lr, lr_grid=None)
        active, active_v = np.ones(len(y), bool), np.ones(len(y_val), bool)
        check_v = check_split(y_val, cfg.stage_check_fraction, seed0)
        self.stages_: list[Stage] = []
        self.train_routing_: list[float] = []
        self.remaining_train_imbalance_: list[dict] = []
        self.filtered_train_imbalance_: list[dict] = []
        self.train_imbalance_ = imbalance(y, C)
        self.stopped_: str | None = None
        for s in range(cfg.num_stages):
            ya = y[active]
            if active.sum() < MIN_STAGE_SAMPLES or len(np.unique(ya)) < 2:
                self.stopped_ = f"stage {s + 1}: too few active train samples or classes"
                break
            seed = stage_seed(seed0, s)
            what = f"stage {s + 1}/{cfg.num_stages}: {cfg.flow_seeds} flows"
            on_epoch = (lambda epoch, what=what: progress(1, what)) if progress else None
            gmf = fit_stage(Xt[active], torch.as_tensor(ya), cfg, seed, on_epoch=on_epoch)
            if progress:  # the epochs an early stop skipped
                progress(cfg.flow_epochs - gmf.epochs_run, what)
            if not gmf.usable:
                self.stopped_ = f"stage {s + 1}: every flow diverged in its first epoch"
                break
            lp, cl = ensemble(gmf, Xt, cfg.device)
            thr = top_quantile(lp[active], cfg.rho)
            if not np.isfinite(thr):
                self.stopped_ = f"stage {s + 1}: every flow diverged ({gmf.selection})"
                break
            stage = new_stage(gmf, thr, cl, y, active, cfg.num_clusters, C, cfg)
            filt = active & (lp >= thr)
            lpv, clv = ensemble(gmf, torch.as_tensor(Xv), cfg.device)
            filt_v = active_v & (lpv >= thr)
            sel_v = filt_v & ~check_v
            if progress:
                progress(0, f"stage {s + 1}/{cfg.num_stages}: classifier")
            stage.classifier = train_balanced_softmax(
                Xs[filt],
                y[filt],
                C,
                P=stage.prior(cl[:, filt], y[filt]),
                X_val=Xv[sel_v],
                y_val=y_val[sel_v],
                P_val=stage.prior(clv[:, sel_v]),
                config=stage_config,
                seed=derive_seed(seed, "classifier"),
                init=self.regular_.module if cfg.warm_start else None,
                mask_counts=self.class_counts_ if cfg.warm_start else None,
            )
            if cfg.stage_check_fraction > 0:
                m = filt_v & check_v
                stage.accepted, stage.check = held_out_check(
                    y_val[m],
                    stage.classifier.predict(Xv[m], stage.prior(clv[:, m])),
                    self.regular_.predict(Xv[m]),
                    cfg.stage_check_margin_se,
                )
            self.train_routing_.append(float(filt.sum() / active.sum()))
            self.stages_.append(stage)
            active, active_v = active & ~filt, active_v & ~filt_v
            self.remaining_train_imbalance_.append(imbalance(y[active], C))
            self.filtered_train_imbalance_.append(imbalance(y[filt], C))
        return self

    # ------------------------------------------------------------ inference
    def _scores(self, X: np.ndarray) -> tuple[np.ndarray, list[tuple]]:
        """Standardised X, and per stage (ensemble log p (N,), clusters (R, N),
        member log p (R, N))."""
        check_is_fitted(self)
        Xs = self.scaler_.transform(check_features(self, X))
        xt = torch.as_tensor(Xs)
        return Xs, [ensemble(st.gmf, xt, self.config_.device, True) for st in self.stages_]

    def trace(self, X: np.ndarray) -> Trace:
        """Every per-sample quantity of inference on X (N, D), in one pass (``Trace``)."""
        Xs, sc = self._scores(X)
        route = self._route(sc, len(Xs))
        pred = self._predict(Xs, sc, route)
        lp, cl, member = ([t[i] for t in sc] for i in range(3))
        return Trace(Xs, lp, member, cl, route, self.classes_[pred])

    def route(self, X: np.ndarray) -> np.ndarray:
        """Stage that claims each sample: (N,) int, ``len(stages_)`` = regular classifier."""
        _, sc = self._scores(X)
        return self._route(sc, len(X))

    def _route(self, sc, n: int) -> np.ndarray:
        out = np.full(n, len(self.stages_), dtype=np.int64)
        for s in reversed(range(len(self.stages_))):
            out[sc[s][0] >= self.stages_[s].threshold] = s
        return out

    def predict(self, X) -> np.ndarray:
        """Predicted labels (N,) of ``classes_``: each sample takes the label of the
        stage that claimed it."""
        Xs, sc = self._scores(X)
        return self.classes_[self._predict(Xs, sc, self._route(sc, len(Xs)))]

    def _predict(self, Xs, sc, route) -> np.ndarray:
        """Class indices (N,) of the stages' (or the regular classifier's) labels."""
        pred = self.regular_.predict(Xs)
        for s, st in enumerate(self.stages_):
            m = route == s
            if m.any() and st.accepted:
                pred[m] = st.classifier.predict(Xs[m], st.prior(sc[s][1][:, m]))
        return pred

    def predict_regular(self, X: np.ndarray) -> np.ndarray:
        """Predicted labels (N,) of the regular classifier alone: the Balanced-Softmax probe."""
        check_is_fitted(self)
        Xs = self.scaler_.transform(check_features(self, X))
        return self.classes_[self.regular_.predict(Xs)]

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """Balanced accuracy of ``predict(X)`` against y (N,): mean per-class recall
        over the classes present in y (``lteval.heads.balanced_accuracy``)."""
        return balanced_accuracy(np.asarray(y), self.predict(X))
