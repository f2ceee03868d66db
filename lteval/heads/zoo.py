"""The long-tailed heads DLSA is compared with, as scikit-learn-style estimators.

Every estimator: ``fit(X, y, X_val, y_val, num_classes=None)`` standardises with
train statistics, chooses its hyper-parameters on the validation split (never on
test), and offers ``predict(X)`` and ``score(X, y)`` (balanced accuracy).

- ``LinearProbe``: plain cross-entropy linear head.
- ``BalancedSoftmaxProbe``: ``log n_c`` added to the logits in the loss.
- ``LogitAdjusted``: the CE probe, predicting ``argmax z - tau log pi`` (post-hoc
  logit adjustment, Menon et al. 2021), tau on validation.
- ``CRT``: classifier re-training with class-balanced sampling (Kang et al. 2020).
- ``TauNorm``: the CE probe's weights divided by ``||w_c||^tau``, tau on validation.
- ``LWS``: the CE probe frozen, a learned per-class scale, class-balanced sampling.
- ``NCM``: nearest class mean, cosine (default) or euclidean.
- ``KNN``: k nearest neighbours (cosine), k on validation.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.neighbors import KNeighborsClassifier
from torch.nn import functional as F

from lteval.heads.linear import LinearConfig, Standardizer, train_balanced_softmax
from lteval.heads.metrics import balanced_accuracy

TAUS = tuple(np.round(np.arange(0, 2.01, 0.1), 2))


class _Base:
    """Shared input handling: standardise, remember the classes and counts."""

    def __init__(self, config: LinearConfig | None = None, seed: int = 0):
        self.config = config or LinearConfig()
        self.seed = seed

    needs_val = True

    def _prepare(self, X, y, X_val, y_val, num_classes):
        if self.needs_val and (X_val is None or y_val is None or len(y_val) == 0):
            raise ValueError(
                f"{type(self).__name__} chooses its hyper-parameters on validation: "
                "pass X_val and y_val"
            )
        X, y = np.asarray(X, np.float32), np.asarray(y, np.int64)
        self.num_classes_ = int(num_classes or y.max() + 1)
        self.class_counts_ = np.bincount(y, minlength=self.num_classes_)
        self.scaler_ = Standardizer().fit(X)
        Xv = None if X_val is None else self.scaler_.transform(np.asarray(X_val, np.float32))
        yv = None if y_val is None else np.asarray(y_val, np.int64)
        return self.scaler_.transform(X), y, Xv, yv

    def _logits(self, Xs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(self, X) -> np.ndarray:
        return self._logits(self.scaler_.transform(np.asarray(X, np.float32))).argmax(1)

    def score(self, X, y) -> float:
        """Balanced accuracy on (X, y)."""
        return balanced_accuracy(np.asarray(y), self.predict(X))


def _choose(values, score_fn) -> tuple[float, list[float]]:
    """The value with the best validation score (ties: the first), and all scores."""
    scores = [score_fn(v) for v in values]
    return values[int(np.argmax(scores))], scores


class LinearProbe(_Base):
    """Cross-entropy linear head; the epoch is chosen on validation (if given)."""

    needs_val = False
    balanced_softmax = False

    def fit(self, X, y, X_val=None, y_val=None, num_classes=None):
        Xs, y, Xv, yv = self._prepare(X, y, X_val, y_val, num_classes)
        ones = np.where(self.class_counts_ > 0, 1, 0)  # log 1 = 0: plain cross-entropy
        self.head_ = train_balanced_softmax(
            Xs,
            y,
            self.num_classes_,
            X_val=Xv,
            y_val=yv,
            class_counts=None if self.balanced_softmax else ones,
            config=self.config,
            seed=self.seed,
        )
        return self

    def _logits(self, Xs):
        return self.head_.logits(Xs)


class BalancedSoftmaxProbe(LinearProbe):
    """Balanced-Softmax linear head (``log n_c`` added to the logits in the loss):
    the baseline every backbone gets, and DLSA's regular classifier."""

    balanced_softmax = True


class LogitAdjusted(LinearProbe):
    """CE probe with post-hoc logit adjustment ``z - tau log pi``; tau on validation."""

    needs_val = True

    def fit(self, X, y, X_val=None, y_val=None, num_classes=None):
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

    def __init__(self, config: LinearConfig | None = None, seed: int = 0):
        super().__init__(config, seed)
        self.config = LinearConfig(**{**vars(self.config), "sampling": "class-balanced"})


class TauNorm(LinearProbe):
    """The CE probe's class weights rescaled by ``1 / ||w_c||^tau`` (no bias)."""

    needs_val = True

    def fit(self, X, y, X_val=None, y_val=None, num_classes=None):
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


class LWS(LinearProbe):
    """Learnable weight scaling: CE probe frozen, per-class scale f_c learned with
    class-balanced sampling; the epoch is chosen on validation."""

    needs_val = True

    def fit(self, X, y, X_val=None, y_val=None, num_classes=None):
        super().fit(X, y, X_val, y_val, num_classes)
        Xs = self.scaler_.transform(np.asarray(X, np.float32))
        Xv = self.scaler_.transform(np.asarray(X_val, np.float32))
        with torch.no_grad():
            z = torch.as_tensor(self.head_.logits(Xs)).nan_to_num(neginf=-1e4)
            zv = torch.as_tensor(self.head_.logits(Xv)).nan_to_num(neginf=-1e4)
        scale = torch.ones(self.num_classes_, requires_grad=True)
        opt = torch.optim.Adam([scale], lr=self.config.lr)
        gen = torch.Generator().manual_seed(self.seed)
        w = 1.0 / torch.as_tensor(self.class_counts_, dtype=torch.float64).clamp_min(1)[y]
        yt = torch.as_tensor(y)
        self.scale_ = scale.detach().clone()  # scale 1 (the CE probe) is the first candidate
        best = balanced_accuracy(y_val, zv.argmax(1).numpy())
        for _ in range(self.config.epochs):
            order = torch.multinomial(w, len(y), replacement=True, generator=gen)
            for s in range(0, len(order), self.config.batch_size):
                b = order[s : s + self.config.batch_size]
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
        super().__init__()
        if metric not in ("cosine", "euclidean"):
            raise ValueError(f"metric must be cosine or euclidean, got {metric!r}")
        self.metric = metric

    def _norm(self, Xs):
        if self.metric == "cosine":
            return Xs / (np.linalg.norm(Xs, axis=1, keepdims=True) + 1e-12)
        return Xs

    def fit(self, X, y, X_val=None, y_val=None, num_classes=None):
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
    """k nearest neighbours (cosine) on standardised features; k on validation."""

    KS = (1, 3, 5, 10, 20)

    def fit(self, X, y, X_val=None, y_val=None, num_classes=None):
        Xs, y, Xv, yv = self._prepare(X, y, X_val, y_val, num_classes)
        fitted = {
            k: KNeighborsClassifier(k, metric="cosine").fit(Xs, y) for k in self.KS if k <= len(y)
        }
        self.k_, self.k_scores_ = _choose(
            list(fitted), lambda k: balanced_accuracy(yv, fitted[k].predict(Xv))
        )
        self.model_ = fitted[self.k_]
        return self

    def predict(self, X) -> np.ndarray:
        return self.model_.predict(self.scaler_.transform(np.asarray(X, np.float32)))
