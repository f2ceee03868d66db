"""What every lteval head shares: checked input, classes, standardisation.

``fit(X, y, *, X_val=None, y_val=None, classes=None)``: X (N, D) features, y (N,)
labels of any sortable kind (``classes_`` is their sorted set, or ``classes``);
X_val / y_val, keyword-only, choose hyper-parameters (never the evaluation split).
A head that needs validation and is given none holds out a seeded per-class
``validation_fraction`` of train for it (as ``HistGradientBoostingClassifier``
does). ``predict(X)`` returns labels of ``classes_``; ``score`` is balanced accuracy.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from lteval.heads.inputs import carve_validation, check_features, check_fit_input
from lteval.heads.linear import Standardizer
from lteval.heads.metrics import balanced_accuracy
from lteval.seeds import check_random_state


class Head(ClassifierMixin, BaseEstimator):
    """Base of the heads: input checks, ``classes_``, class counts and a z-scoring
    fitted on train. Fitted: ``classes_`` (C,), ``n_features_in_``, ``num_classes_``,
    ``class_counts_`` (C,) train count of each class, ``scaler_``."""

    needs_val = False

    def _prepare(self, X, y, X_val, y_val, classes):
        """Standardised (X, y, X_val, y_val), labels as indices into ``classes_``."""
        X, y, Xv, yv = check_fit_input(self, X, y, X_val, y_val, classes)
        if Xv is None and getattr(self, "probe", None) is not None:
            raise ValueError(
                "probe= reuses a probe fitted on all of train: pass X_val and y_val too "
                "(holding validation out of train would leave the probe trained on it)"
            )
        if self.needs_val and Xv is None:
            held = carve_validation(y, self.validation_fraction, self._seed())
            X, y, Xv, yv = X[~held], y[~held], X[held], y[held]
        self.num_classes_ = len(self.classes_)
        self.class_counts_ = np.bincount(y, minlength=self.num_classes_)
        self.scaler_ = Standardizer().fit(X)
        Xv = None if Xv is None else self.scaler_.transform(Xv)
        return self.scaler_.transform(X), y, Xv, yv

    def _seed(self) -> int:
        return check_random_state(getattr(self, "random_state", 0))

    def _logits(self, Xs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _features(self, X) -> np.ndarray:
        """Standardised, checked features X (N, D) of a fitted head."""
        check_is_fitted(self)
        return self.scaler_.transform(check_features(self, X))

    def predict(self, X) -> np.ndarray:
        """Predicted labels (N,) of ``classes_``, for features X (N, D)."""
        Xs = self._features(X)  # NotFittedError first
        return self.classes_[self._logits(Xs).argmax(1)]

    def score(self, X, y) -> float:
        """Balanced accuracy on (X (N, D), y (N,)); see ``balanced_accuracy``."""
        return balanced_accuracy(np.asarray(y), self.predict(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags


def choose(values, score_fn) -> tuple[float, list[float]]:
    """The value with the best validation score (ties: the first), and all scores."""
    scores = [score_fn(v) for v in values]
    return values[int(np.argmax(scores))], scores
