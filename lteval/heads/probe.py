"""The Balanced-Softmax linear probe: the baseline every backbone gets."""

from __future__ import annotations

import numpy as np

from lteval.heads.linear import LinearConfig, Standardizer, train_balanced_softmax
from lteval.heads.metrics import accuracy_report


class BalancedSoftmaxProbe:
    """scikit-learn-style estimator: standardise, then a Balanced-Softmax linear head.

    ``fit(X, y, X_val, y_val)`` chooses the epoch on the validation split.
    """

    def __init__(self, config: LinearConfig | None = None, seed: int = 0):
        self.config = config or LinearConfig()
        self.seed = seed

    def fit(self, X, y, X_val=None, y_val=None, num_classes: int | None = None):
        X, y = np.asarray(X, np.float32), np.asarray(y, np.int64)
        self.num_classes_ = int(num_classes or y.max() + 1)
        self.scaler_ = Standardizer().fit(X)
        Xv = None if X_val is None else self.scaler_.transform(np.asarray(X_val, np.float32))
        self.head_ = train_balanced_softmax(
            self.scaler_.transform(X),
            y,
            self.num_classes_,
            X_val=Xv,
            y_val=y_val,
            config=self.config,
            seed=self.seed,
        )
        self.class_counts_ = np.bincount(y, minlength=self.num_classes_)
        return self

    def predict(self, X) -> np.ndarray:
        return self.head_.predict(self.scaler_.transform(np.asarray(X, np.float32)))

    def score(self, X, y) -> float:
        """Balanced accuracy on (X, y)."""
        return float(accuracy_report(y, self.predict(X), self.class_counts_)["balanced"])
