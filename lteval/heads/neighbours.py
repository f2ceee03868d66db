"""Heads without training: nearest class mean and k nearest neighbours, as
scikit-learn estimators on standardised features (see ``lteval.heads.base``)."""

from __future__ import annotations

import numpy as np
import torch

from lteval.heads.base import Head, choose
from lteval.heads.metrics import balanced_accuracy


class NCM(Head):
    """Nearest class mean on standardised features.

    Parameters
    ----------
    metric : {"cosine", "euclidean"}, default="cosine"
        How a sample is compared with each class mean.
    """

    def __init__(self, *, metric: str = "cosine"):
        self.metric = metric

    def _norm(self, Xs):
        if self.metric == "cosine":
            return Xs / (np.linalg.norm(Xs, axis=1, keepdims=True) + 1e-12)
        return Xs

    def fit(self, X, y, *, X_val=None, y_val=None, classes=None) -> NCM:
        """X: (N, D) train features, y: (N,) labels; validation is checked, not used."""
        if self.metric not in ("cosine", "euclidean"):
            raise ValueError(f"metric = {self.metric!r}; choose one of 'cosine', 'euclidean'")
        Xs, y, _, _ = self._prepare(X, y, X_val, y_val, classes)
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


class KNN(Head):
    """k nearest neighbours (cosine) on standardised features, k chosen on validation.

    Parameters
    ----------
    ks : tuple of int, default=(1, 3, 5, 10, 20)
        The k tried (positive; those above the train size are left out).
    validation_fraction : float, default=0.2
        Without X_val / y_val: the seeded per-class share of train held out to
        choose k, in (0, 1).
    random_state : int, default=0
        Non-negative seed of that held-out share.

    One neighbour search serves every k: the ``max(ks)`` most similar train samples
    of each query, found in query chunks of at most ``2**26`` similarities (256 MB
    in float32), so memory never holds a query x train matrix. A vote's ties go to
    the smallest label, as scikit-learn's ``KNeighborsClassifier`` breaks them.
    """

    KS = (1, 3, 5, 10, 20)
    MAX_SIMILARITIES = 2**26
    """Query x train similarities held at once (the chunk size's bound)."""

    needs_val = True

    def __init__(
        self, *, ks: tuple[int, ...] = KS, validation_fraction: float = 0.2, random_state: int = 0
    ):
        self.ks = ks
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    def fit(self, X, y, *, X_val=None, y_val=None, classes=None) -> KNN:
        """X: (N, D) train features, y: (N,) labels; X_val / y_val choose k."""
        ks = tuple(self.ks) if isinstance(self.ks, tuple | list) else ()
        if not ks or not all(isinstance(k, int) and not isinstance(k, bool) and k > 0 for k in ks):
            raise ValueError(f"ks must be a non-empty list of positive integers, got {self.ks!r}")
        Xs, y, Xv, yv = self._prepare(X, y, X_val, y_val, classes)
        self.train_ = _unit(Xs)
        self.train_labels_ = y
        usable = [k for k in ks if k <= len(y)]
        if not usable:
            raise ValueError(f"ks = {self.ks!r}: every k exceeds the {len(y)} training samples")
        votes = self._votes(Xv, usable)
        self.k_, self.k_scores_ = choose(usable, lambda k: balanced_accuracy(yv, votes[k]))
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

    def predict(self, X) -> np.ndarray:
        """Predicted labels (N,) of ``classes_``, for features X (N, D)."""
        Xs = self._features(X)  # NotFittedError first
        return self.classes_[self._votes(Xs, [self.k_])[self.k_]]


def _unit(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine similarity is then a dot product)."""
    return (X / (np.linalg.norm(X, axis=1, keepdims=True) + 1e-12)).astype(np.float32)
