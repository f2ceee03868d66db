"""The long-tailed heads DLSA is compared with, as scikit-learn estimators.

Every estimator is a scikit-learn estimator (``get_params``, ``clone``; parameters
checked at ``fit``): ``fit(X, y, X_val, y_val, num_classes=None)`` standardises with
train statistics, chooses its hyper-parameters on the validation split (never on
test), and offers ``predict(X)`` and ``score(X, y)`` (balanced accuracy); both raise
``NotFittedError`` before ``fit``. The linear heads take ``(config, random_state)``.

- ``LinearProbe``: plain cross-entropy linear head.
- ``BalancedSoftmaxProbe``: ``log n_c`` added to the logits in the loss.
- ``LogitAdjusted``, ``TauNorm``, ``LWS`` take ``probe=`` a fitted ``LinearProbe`` to
  build on (one CE probe serves all three); without it each trains its own.
- ``LogitAdjusted``: the CE probe, predicting ``argmax z - tau log pi`` (post-hoc
  logit adjustment, Menon et al. 2021), tau on validation.
- ``CRT``: classifier re-training with class-balanced sampling (Kang et al. 2020).
- ``TauNorm``: the CE probe's weights divided by ``||w_c||^tau``, tau on validation.
- ``LWS``: the CE probe frozen, a learned per-class scale, class-balanced sampling.
- ``NCM``: nearest class mean, cosine (default) or euclidean.
- ``KNN``: k nearest neighbours (cosine), k on validation.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted
from torch.nn import functional as F

from lteval.heads.linear import LinearConfig, Standardizer, train_balanced_softmax
from lteval.heads.metrics import balanced_accuracy
from lteval.heads.seeding import check_random_state

TAUS = tuple(np.round(np.arange(0, 2.01, 0.1), 2))


class _Base(ClassifierMixin, BaseEstimator):
    """Shared input handling: standardise, remember the classes and counts.

    Parameters (stored unchanged, checked at ``fit``): ``config`` the linear-head
    settings (None: ``LinearConfig()``), ``random_state`` a non-negative int seed
    driving local generators only (torch's and numpy's global states are untouched).
    """

    needs_val = True

    def __init__(self, config: LinearConfig | None = None, random_state: int = 0):
        self.config = config
        self.random_state = random_state

    def _settings(self) -> LinearConfig:
        """A validated copy of ``config`` (ValueError naming a bad setting)."""
        cfg = LinearConfig() if self.config is None else self.config
        if not isinstance(cfg, LinearConfig):
            raise ValueError(f"config must be a LinearConfig or None, got {type(cfg).__name__}")
        return replace(cfg).validate()

    def _prepare(self, X, y, X_val, y_val, num_classes):
        if self.needs_val and (X_val is None or y_val is None or len(y_val) == 0):
            raise ValueError(
                f"{type(self).__name__} chooses its hyper-parameters on validation: "
                "pass X_val and y_val"
            )
        X, y = np.asarray(X, np.float32), np.asarray(y, np.int64)
        self.n_features_in_ = X.shape[1]
        self.num_classes_ = int(num_classes or y.max() + 1)
        self.class_counts_ = np.bincount(y, minlength=self.num_classes_)
        self.scaler_ = Standardizer().fit(X)
        Xv = None if X_val is None else self.scaler_.transform(np.asarray(X_val, np.float32))
        yv = None if y_val is None else np.asarray(y_val, np.int64)
        return self.scaler_.transform(X), y, Xv, yv

    def _logits(self, Xs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted labels (N,) of features X (N, D)."""
        check_is_fitted(self)
        return self._logits(self.scaler_.transform(np.asarray(X, np.float32))).argmax(1)

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """Balanced accuracy on (X (N, D), y (N,)); see ``balanced_accuracy``."""
        return balanced_accuracy(np.asarray(y), self.predict(X))


def _choose(values, score_fn) -> tuple[float, list[float]]:
    """The value with the best validation score (ties: the first), and all scores."""
    scores = [score_fn(v) for v in values]
    return values[int(np.argmax(scores))], scores


class LinearProbe(_Base):
    """Cross-entropy linear head; the epoch is chosen on validation (if given)."""

    needs_val = False
    balanced_softmax = False

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        num_classes: int | None = None,
    ) -> LinearProbe:
        """X: (N, D) train features, y: (N,) int labels; X_val/y_val choose the epoch."""
        self.config_ = self._settings()
        self.seed_ = check_random_state(self.random_state)
        Xs, y, Xv, yv = self._prepare(X, y, X_val, y_val, num_classes)
        if getattr(self, "probe", None) is not None:  # a post-hoc head on a fitted probe
            self.head_ = self._probe_head()
            return self
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
        return self

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
    one with ``config`` and ``random_state``, which gives the same probe."""

    needs_val = True

    def __init__(
        self,
        config: LinearConfig | None = None,
        random_state: int = 0,
        probe: LinearProbe | None = None,
    ):
        super().__init__(config, random_state)
        self.probe = probe

    def _probe_head(self):
        """The fitted ``probe``'s head, after checking it fits this training data."""
        probe = self.probe
        if type(probe) is not LinearProbe:
            raise ValueError(f"probe must be a fitted LinearProbe, got {type(probe).__name__}")
        check_is_fitted(probe)
        same = (
            probe.num_classes_ == self.num_classes_
            and np.array_equal(probe.class_counts_, self.class_counts_)
            and np.array_equal(probe.scaler_.mean, self.scaler_.mean)
            and np.array_equal(probe.scaler_.std, self.scaler_.std)
        )
        if not same:
            raise ValueError("probe was fitted on other training data than fit() was given")
        return probe.head_


class LogitAdjusted(_PostHoc):
    """CE probe with post-hoc logit adjustment ``z - tau log pi``; tau on validation."""

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        num_classes: int | None = None,
    ) -> LogitAdjusted:
        super().fit(X, y, X_val, y_val, num_classes)
        self.log_prior_ = np.log(np.maximum(self.class_counts_, 1) / self.class_counts_.sum())
        Xv = self.scaler_.transform(np.asarray(X_val, np.float32))
        z = self.head_.logits(Xv)
        self.tau_, self.tau_scores_ = _choose(
            TAUS, lambda t: balanced_accuracy(y_val, (z - t * self.log_prior_).argmax(1))
        )
        return self

    def _logits(self, Xs):
        return self.head_.logits(Xs) - self.tau_ * self.log_prior_


class CRT(LinearProbe):
    """Classifier re-training: a linear head trained with class-balanced sampling."""

    def _settings(self) -> LinearConfig:
        """``config`` with class-balanced sampling, whatever its ``sampling``."""
        return replace(super()._settings(), sampling="class-balanced")


class TauNorm(_PostHoc):
    """The CE probe's class weights rescaled by ``1 / ||w_c||^tau`` (no bias)."""

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        num_classes: int | None = None,
    ) -> TauNorm:
        super().fit(X, y, X_val, y_val, num_classes)
        self.W_ = self.head_.module.fc.weight.detach().numpy().copy()
        self.norms_ = np.linalg.norm(self.W_, axis=1) + 1e-12
        Xv = self.scaler_.transform(np.asarray(X_val, np.float32))
        self.tau_, self.tau_scores_ = _choose(
            TAUS, lambda t: balanced_accuracy(y_val, self._scaled(Xv, t).argmax(1))
        )
        return self

    def _scaled(self, Xs, tau):
        out = Xs @ (self.W_ / self.norms_[:, None] ** tau).T
        out[:, self.class_counts_ == 0] = -np.inf
        return out

    def _logits(self, Xs):
        return self._scaled(Xs, self.tau_)


class LWS(_PostHoc):
    """Learnable weight scaling: CE probe frozen, per-class scale f_c learned with
    class-balanced sampling; the epoch is chosen on validation."""

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        num_classes: int | None = None,
    ) -> LWS:
        super().fit(X, y, X_val, y_val, num_classes)
        Xs = self.scaler_.transform(np.asarray(X, np.float32))
        Xv = self.scaler_.transform(np.asarray(X_val, np.float32))
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
        return self

    def _logits(self, Xs):
        z = torch.as_tensor(self.head_.logits(Xs)).nan_to_num(neginf=-1e4)
        return (z * self.scale_).numpy()


class NCM(_Base):
    """Nearest class mean on standardised features; ``metric`` "cosine" or "euclidean"."""

    needs_val = False

    def __init__(self, metric: str = "cosine"):
        self.metric = metric

    def _norm(self, Xs):
        if self.metric == "cosine":
            return Xs / (np.linalg.norm(Xs, axis=1, keepdims=True) + 1e-12)
        return Xs

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        num_classes: int | None = None,
    ) -> NCM:
        """X: (N, D) train features, y: (N,) int labels; no validation is used."""
        if self.metric not in ("cosine", "euclidean"):
            raise ValueError(f"metric = {self.metric!r}; choose one of 'cosine', 'euclidean'")
        Xs, y, _, _ = self._prepare(X, y, None, None, num_classes)
        Z = self._norm(Xs)
        self.means_ = np.zeros((self.num_classes_, Xs.shape[1]), np.float32)
        np.add.at(self.means_, y, Z)
        self.means_ /= np.maximum(self.class_counts_, 1)[:, None]
        return self

    def _logits(self, Xs):
        Z = self._norm(Xs)
        if self.metric == "cosine":
            M = self.means_ / (np.linalg.norm(self.means_, axis=1, keepdims=True) + 1e-12)
            out = Z @ M.T
        else:  # -||z - mu||^2 by one matmul, never an N x C x D tensor
            out = 2 * Z @ self.means_.T - (self.means_**2).sum(1)[None] - (Z**2).sum(1)[:, None]
        out[:, self.class_counts_ == 0] = -np.inf
        return out


class KNN(_Base):
    """k nearest neighbours (cosine) on standardised features; k chosen on
    validation among ``ks`` (those not above the train size).

    One neighbour search serves every k: the ``max(ks)`` most similar train samples
    of each query, found in query chunks of at most ``2**26`` similarities (256 MB
    in float32), so memory never holds a query x train matrix. A vote's ties go to
    the smallest label, as scikit-learn's ``KNeighborsClassifier`` breaks them.
    """

    KS = (1, 3, 5, 10, 20)
    MAX_SIMILARITIES = 2**26
    """Query x train similarities held at once (the chunk size's bound)."""

    def __init__(self, ks: tuple[int, ...] = KS):
        self.ks = ks

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        num_classes: int | None = None,
    ) -> KNN:
        """X: (N, D) train features, y: (N,) int labels; X_val/y_val choose k."""
        ks = tuple(self.ks) if isinstance(self.ks, tuple | list) else ()
        if not ks or not all(isinstance(k, int) and not isinstance(k, bool) and k > 0 for k in ks):
            raise ValueError(f"ks must be a non-empty list of positive integers, got {self.ks!r}")
        Xs, y, Xv, yv = self._prepare(X, y, X_val, y_val, num_classes)
        self.train_ = _unit(Xs)
        self.train_labels_ = y
        usable = [k for k in ks if k <= len(y)]
        votes = self._votes(Xv, usable)
        self.k_, self.k_scores_ = _choose(usable, lambda k: balanced_accuracy(yv, votes[k]))
        return self

    def _votes(self, Xs: np.ndarray, ks: list[int]) -> dict[int, np.ndarray]:
        """{k: predicted labels (N,)} of standardised queries ``Xs``."""
        Q, T, labels = _unit(Xs), self.train_, self.train_labels_
        kmax = max(ks)
        out = {k: np.empty(len(Q), np.int64) for k in ks}
        step = max(1, self.MAX_SIMILARITIES // max(len(T), 1))
        Tt = torch.from_numpy(T)
        for s in range(0, len(Q), step):
            sim = torch.from_numpy(Q[s : s + step]) @ Tt.T
            # the kmax most similar, most similar first (torch's top-k: a partial sort,
            # 7 times numpy's argpartition at ImageNet-LT's 116k train rows)
            near = torch.topk(sim, min(kmax, len(T)), dim=1, sorted=True).indices.numpy()
            C, rows = self.num_classes_, np.arange(len(near))[:, None] * self.num_classes_
            for k in ks:
                flat = (rows + labels[near[:, :k]]).ravel()
                counts = np.bincount(flat, minlength=len(near) * C).reshape(len(near), C)
                out[k][s : s + step] = counts.argmax(1)  # ties: the smallest label
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted labels (N,) of features X (N, D)."""
        check_is_fitted(self)
        Xs = self.scaler_.transform(np.asarray(X, np.float32))
        return self._votes(Xs, [self.k_])[self.k_]


def _unit(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine similarity is then a dot product)."""
    return (X / (np.linalg.norm(X, axis=1, keepdims=True) + 1e-12)).astype(np.float32)
