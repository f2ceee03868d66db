"""The linear long-tailed heads DLSA is compared with, as scikit-learn estimators.

Each takes ``LinearConfig``'s settings as flat keyword parameters (``epochs``,
``lr``, ``lr_grid``, ...; ``get_params`` lists them, ``set_params`` and
``GridSearchCV`` reach each) plus ``random_state``, a non-negative int seed;
``from_config(config, random_state=...)`` builds one from a ``LinearConfig``.
Parameters are stored unchanged and checked at ``fit``. ``fit(X, y, *, X_val=None,
y_val=None, classes=None)`` standardises with train statistics and chooses its
hyper-parameters on the validation split (never on test); see ``lteval.heads.base``.

- ``LinearProbe``: plain cross-entropy linear head.
- ``BalancedSoftmaxProbe``: ``log n_c`` added to the logits in the loss.
- ``LogitAdjusted``, ``TauNorm``, ``LWS`` take ``probe=`` a fitted ``LinearProbe`` to
  build on (one CE probe serves all three); without it each trains its own.
- ``LogitAdjusted``: the CE probe, predicting ``argmax z - tau log pi`` (post-hoc
  logit adjustment, Menon et al. 2021), tau on validation.
- ``CRT``: classifier re-training with class-balanced sampling (Kang et al. 2020).
- ``TauNorm``: the CE probe's weights divided by ``||w_c||^tau``, tau on validation.
- ``LWS``: the CE probe frozen, a learned per-class scale, class-balanced sampling.

``NCM`` and ``KNN`` are in ``lteval.heads.neighbours``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from lteval.heads.base import Head, choose
from lteval.heads.linear import LinearConfig, train_balanced_softmax
from lteval.heads.metrics import balanced_accuracy
from lteval.heads.params import field_defaults, keyword_init, settings

TAUS = tuple(np.round(np.arange(0, 2.01, 0.1), 2))

LINEAR_PARAMS = field_defaults(LinearConfig, skip=("warm_start_margin_se",))
"""The linear heads' settings (a head never warm-starts: no margin to set)."""


class LinearProbe(Head):
    """Cross-entropy linear head; the epoch is chosen on validation (if given).

    Parameters (keyword-only): every ``LinearConfig`` setting but
    ``warm_start_margin_se``, and ``random_state`` (non-negative int) seeding the
    initialisation and the sampling through local generators only.
    Fitted: ``config_`` (the checked ``LinearConfig``), ``head_`` (``TrainedHead``:
    weights, chosen epoch and learning rate), and ``Head``'s attributes.
    """

    balanced_softmax = False
    __init__ = keyword_init({**LINEAR_PARAMS, "random_state": 0})

    @classmethod
    def from_config(cls, config: LinearConfig, **params):
        """A head with ``config``'s settings (those it takes) and ``params``."""
        names = set(cls._get_param_names())
        own = {k: v for k, v in config.get_params().items() if k in names}
        return cls(**{**own, **params})

    def _settings(self) -> LinearConfig:
        """The ``LinearConfig`` of the parameters, checked (ValueError naming one)."""
        return settings(self, LinearConfig).validate()

    def fit(self, X, y, *, X_val=None, y_val=None, classes=None) -> LinearProbe:
        """X: (N, D) train features, y: (N,) labels; X_val / y_val choose the epoch
        and learning rate (without them: every epoch, the last kept); ``classes``:
        every class label (default: those of y and y_val)."""
        self.config_ = self._settings()
        self.seed_ = self._seed()
        Xs, y, Xv, yv = self._prepare(X, y, X_val, y_val, classes)
        if getattr(self, "probe", None) is not None:  # a post-hoc head on a fitted probe
            self.head_ = self._probe_head()
        else:
            ones = np.where(self.class_counts_ > 0, 1, 0)  # log 1 = 0: plain cross-entropy
            self.head_ = train_balanced_softmax(
                Xs,
                y,
                self.num_classes_,
                X_val=Xv,
                y_val=yv,
                class_counts=None if self.balanced_softmax else ones,
                config=self.config_,
                seed=self.seed_,
            )
        self._post_hoc(Xs, y, Xv, yv)
        return self

    def _post_hoc(self, Xs, y, Xv, yv) -> None:
        """What a head fits on top of ``head_``: standardised train (Xs, y) and
        validation (Xv, yv), labels as class indices."""

    def _logits(self, Xs):
        return self.head_.logits(Xs)


class BalancedSoftmaxProbe(LinearProbe):
    """Balanced-Softmax linear head (``log n_c`` added to the logits in the loss):
    the baseline every backbone gets, and DLSA's regular classifier."""

    balanced_softmax = True


class _PostHoc(LinearProbe):
    """A head built on the CE probe. ``probe``: a ``LinearProbe`` already fitted on
    the same training data, reused as it is (as scikit-learn's ``cv="prefit"``), so
    that one probe serves logit adjustment, tau-normalisation and LWS; None trains
    one with the linear settings and ``random_state``, which gives the same probe.
    ``validation_fraction``: the share of train held out to choose on when no
    X_val / y_val is given."""

    needs_val = True
    __init__ = keyword_init(
        {**LINEAR_PARAMS, "probe": None, "validation_fraction": 0.2, "random_state": 0}
    )

    def _probe_head(self):
        """The fitted ``probe``'s head, after checking it fits this training data."""
        probe = self.probe
        if type(probe) is not LinearProbe:
            raise ValueError(f"probe must be a fitted LinearProbe, got {type(probe).__name__}")
        if not hasattr(probe, "head_"):
            raise ValueError("probe must be a fitted LinearProbe: call its fit first")
        same = (
            np.array_equal(probe.classes_, self.classes_)
            and np.array_equal(probe.class_counts_, self.class_counts_)
            and np.array_equal(probe.scaler_.mean, self.scaler_.mean)
            and np.array_equal(probe.scaler_.std, self.scaler_.std)
        )
        if not same:
            raise ValueError("probe was fitted on other training data than fit() was given")
        return probe.head_


class LogitAdjusted(_PostHoc):
    """CE probe with post-hoc logit adjustment ``z - tau log pi``; tau on validation."""

    def _post_hoc(self, Xs, y, Xv, y_val) -> None:
        self.log_prior_ = np.log(np.maximum(self.class_counts_, 1) / self.class_counts_.sum())
        z = self.head_.logits(Xv)
        self.tau_, self.tau_scores_ = choose(
            TAUS, lambda t: balanced_accuracy(y_val, (z - t * self.log_prior_).argmax(1))
        )

    def _logits(self, Xs):
        return self.head_.logits(Xs) - self.tau_ * self.log_prior_


class CRT(LinearProbe):
    """Classifier re-training: a linear head trained with class-balanced sampling
    (so it takes no ``sampling`` parameter)."""

    __init__ = keyword_init(
        {**{k: v for k, v in LINEAR_PARAMS.items() if k != "sampling"}, "random_state": 0}
    )

    def _settings(self) -> LinearConfig:
        """The parameters' ``LinearConfig`` with class-balanced sampling."""
        return settings(self, LinearConfig, sampling="class-balanced").validate()


class TauNorm(_PostHoc):
    """The CE probe's class weights rescaled by ``1 / ||w_c||^tau`` (no bias)."""

    def _post_hoc(self, Xs, y, Xv, y_val) -> None:
        self.W_ = self.head_.module.fc.weight.detach().numpy().copy()
        self.norms_ = np.linalg.norm(self.W_, axis=1) + 1e-12
        self.tau_, self.tau_scores_ = choose(
            TAUS, lambda t: balanced_accuracy(y_val, self._scaled(Xv, t).argmax(1))
        )

    def _scaled(self, Xs, tau):
        out = Xs @ (self.W_ / self.norms_[:, None] ** tau).T
        out[:, self.class_counts_ == 0] = -np.inf
        return out

    def _logits(self, Xs):
        return self._scaled(Xs, self.tau_)


class LWS(_PostHoc):
    """Learnable weight scaling: CE probe frozen, per-class scale f_c learned with
    class-balanced sampling; the epoch is chosen on validation."""

    def _post_hoc(self, Xs, y, Xv, y_val) -> None:
        with torch.no_grad():
            z = torch.as_tensor(self.head_.logits(Xs)).nan_to_num(neginf=-1e4)
            zv = torch.as_tensor(self.head_.logits(Xv)).nan_to_num(neginf=-1e4)
        scale = torch.ones(self.num_classes_, requires_grad=True)
        opt = torch.optim.Adam([scale], lr=self.config_.lr)
        gen = torch.Generator().manual_seed(self.seed_)
        w = 1.0 / torch.as_tensor(self.class_counts_, dtype=torch.float64).clamp_min(1)[y]
        yt = torch.as_tensor(y)
        self.scale_ = scale.detach().clone()  # scale 1 (the CE probe) is the first candidate
        best = balanced_accuracy(y_val, zv.argmax(1).numpy())
        cap = self.config_.epoch_samples
        per_epoch = len(y) if cap is None else min(cap, len(y))  # as the linear heads
        for _ in range(self.config_.epochs):
            order = torch.multinomial(w, per_epoch, replacement=True, generator=gen)
            for s in range(0, len(order), self.config_.batch_size):
                b = order[s : s + self.config_.batch_size]
                loss = F.cross_entropy(z[b] * scale, yt[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
            acc = balanced_accuracy(y_val, (zv * scale).argmax(1).numpy())
            if acc > best:
                best, self.scale_ = acc, scale.detach().clone()

    def _logits(self, Xs):
        z = torch.as_tensor(self.head_.logits(Xs)).nan_to_num(neginf=-1e4)
        return (z * self.scale_).numpy()
