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
from lteval.heads.params import settings
from lteval.seeds import torch_generator

TAUS = tuple(np.round(np.arange(0, 2.01, 0.1), 2))

LINEAR_SKIPPED = ("warm_start_margin_se",)
"""``LinearConfig`` settings a head does not take (a head never warm-starts)."""


class LinearProbe(Head):
    """Cross-entropy linear head; the epoch is chosen on validation (if given).

    Parameters
    ----------
    epochs : int, default=150
        Most training epochs (>= 1); an epoch is at most ``epoch_samples`` rows.
    batch_size : int, default=128
        Rows per optimiser step (>= 1).
    lr : float, default=1e-2
        Learning rate (> 0); used when ``lr_grid`` is None.
    weight_decay : float, default=0.0
        L2 penalty on the weights (>= 0).
    optimizer : {"adam", "sgd", "sgd-momentum", "lbfgs"}, default="adam"
        The optimiser.
    patience : int or None, default=20
        Stop this many epochs after the last gain in validation balanced accuracy
        (>= 1); None runs every epoch.
    lr_grid : tuple of float or None, default=(1e-2, 1e-3)
        Learning rates tried in turn, the best on validation kept (each > 0); None
        uses ``lr`` alone.
    sampling : {"instance", "class-balanced"}, default="instance"
        How training rows are drawn: as they come, or each class equally likely.
    epoch_samples : int or None, default=16384
        At most this many rows per epoch (>= 1), drawn from one permutation after
        another; None is every row.
    random_state : int, default=0
        Non-negative seed of the initialisation and the sampling (local generators
        only: the global torch and numpy states are left as they were).

    Attributes
    ----------
    config_ : LinearConfig
        The checked settings.
    head_ : TrainedHead
        The weights, and the epoch and learning rate chosen on validation.
    classes_, n_features_in_, num_classes_, class_counts_, scaler_
        See ``lteval.heads.base.Head``.
    """

    balanced_softmax = False

    def __init__(
        self,
        *,
        epochs: int = 150,
        batch_size: int = 128,
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        patience: int | None = 20,
        lr_grid: tuple[float, ...] | None = (1e-2, 1e-3),
        sampling: str = "instance",
        epoch_samples: int | None = 16384,
        random_state: int = 0,
    ):
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.patience = patience
        self.lr_grid = lr_grid
        self.sampling = sampling
        self.epoch_samples = epoch_samples
        self.random_state = random_state

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
    """A head built on the CE probe (logit adjustment, tau-normalisation, LWS).

    Parameters
    ----------
    epochs, batch_size, lr, weight_decay, optimizer, patience, lr_grid, sampling, epoch_samples
        As for ``LinearProbe``: the CE probe's settings (LWS trains its scales with
        ``epochs``, ``batch_size``, ``lr`` and ``epoch_samples`` too).
    probe : LinearProbe or None, default=None
        A ``LinearProbe`` already fitted on the same training data, reused as it is
        (as scikit-learn's ``cv="prefit"``), so that one probe serves all three
        heads; None trains one with the settings above, which gives the same probe.
    validation_fraction : float, default=0.2
        The share of each train class held out to choose on when no X_val / y_val
        is given, in (0, 1).
    random_state : int, default=0
        As for ``LinearProbe``; also seeds the held-out share.
    """

    needs_val = True

    def __init__(
        self,
        *,
        epochs: int = 150,
        batch_size: int = 128,
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        patience: int | None = 20,
        lr_grid: tuple[float, ...] | None = (1e-2, 1e-3),
        sampling: str = "instance",
        epoch_samples: int | None = 16384,
        probe: LinearProbe | None = None,
        validation_fraction: float = 0.2,
        random_state: int = 0,
    ):
        super().__init__(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            optimizer=optimizer,
            patience=patience,
            lr_grid=lr_grid,
            sampling=sampling,
            epoch_samples=epoch_samples,
            random_state=random_state,
        )
        self.probe = probe
        self.validation_fraction = validation_fraction

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
    """Classifier re-training: a linear head trained with class-balanced sampling.

    Parameters
    ----------
    epochs, batch_size, lr, weight_decay, optimizer, patience, lr_grid, epoch_samples, random_state
        As for ``LinearProbe``; there is no ``sampling``: it is always class-balanced.
    """

    def __init__(
        self,
        *,
        epochs: int = 150,
        batch_size: int = 128,
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        patience: int | None = 20,
        lr_grid: tuple[float, ...] | None = (1e-2, 1e-3),
        epoch_samples: int | None = 16384,
        random_state: int = 0,
    ):
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.patience = patience
        self.lr_grid = lr_grid
        self.epoch_samples = epoch_samples
        self.random_state = random_state

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
        gen = torch_generator(self.seed_, "lws-batches")
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
