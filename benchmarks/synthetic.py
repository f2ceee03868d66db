"""CIFAR-100-LT-shaped synthetic features for the DLSA benchmark.

10,847 train (the exponential profile n_max 500, IF 100, 100 classes) and 10,000
balanced test samples, 512-d, float32. Class means are drawn N(0, 1) in a 64-d
subspace and lifted to 512-d; samples add isotropic noise, then a ReLU as in pooled
CNN features. The noise scale (4 per coordinate) makes the task neither trivial nor
hopeless (a Balanced-Softmax probe scores about 0.62-0.68 balanced accuracy).
Seeded: the same seed gives the same arrays.
"""

from __future__ import annotations

import numpy as np

from lteval.data import long_tailed_counts


def cifar100_lt_like(
    seed: int = 0,
    dim: int = 512,
    classes: int = 100,
    imbalance: float = 100.0,
    n_max: int = 500,
    test_per_class: int = 100,
    noise: float = 4.0,
):
    """(X_train, y_train, X_test, y_test): float32 features and int64 labels."""
    rng = np.random.default_rng(seed)
    counts = long_tailed_counts(n_max, imbalance, classes)
    lift = rng.normal(size=(64, dim)) / np.sqrt(64)
    means = rng.normal(size=(classes, 64)) @ lift

    def draw(per_class):
        y = np.repeat(np.arange(classes), per_class)
        X = np.maximum(means[y] + noise * rng.normal(size=(len(y), dim)), 0)
        return X.astype(np.float32), y.astype(np.int64)

    Xtr, ytr = draw(counts)
    Xte, yte = draw(np.full(classes, test_per_class))
    return Xtr, ytr, Xte, yte
