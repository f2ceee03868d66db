"""LogME (You et al., ICML 2021): a training-free transferability score.

For each class k, the one-hot target column y_k is modelled as a Bayesian linear
regression on the features, y_k ~ N(F w, 1/beta), w ~ N(0, 1/alpha); alpha and
beta maximise the marginal likelihood (evidence) by the paper's fixed-point
iteration on the SVD of F. LogME is the mean over classes of the per-sample log
evidence. Higher means the features make the labels easier to fit linearly.
Units: nats per sample.
"""

from __future__ import annotations

import numpy as np


def _class_evidence(
    x2: np.ndarray,
    res_x2: float,
    sigma: np.ndarray,
    n: int,
    d: int,
    iters: int = 100,
    tol: float = 1e-3,
) -> tuple[float, float, float]:
    """(per-sample log evidence, alpha, beta) of one target column.

    x2: squared projections of the target on the left singular vectors; res_x2: the
    target's energy outside their span; sigma: squared singular values (length d).
    """
    alpha, beta = 1.0, 1.0
    for _ in range(iters):
        t = alpha / beta
        gamma = float((sigma / (sigma + t)).sum())
        m2 = float((sigma * x2 / (t + sigma) ** 2).sum())
        res2 = float((x2 / (1 + sigma / t) ** 2).sum()) + res_x2
        alpha = gamma / (m2 + 1e-5)
        beta = (n - gamma) / (res2 + 1e-5)
        if abs(alpha / beta - t) / t < tol:
            break
    evidence = (
        d / 2 * np.log(alpha)
        + n / 2 * np.log(beta)
        - 0.5 * np.sum(np.log(alpha + beta * sigma))
        - beta / 2 * res2
        - alpha / 2 * m2
        - n / 2 * np.log(2 * np.pi)
    )
    return float(evidence / n), alpha, beta


def logme(X: np.ndarray, y: np.ndarray) -> float:
    """LogME of features X (N, D) for integer labels y (N,). Higher is better."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"X must be (N, D) with N = len(y); got {X.shape} and {y.shape}")
    n, d = X.shape
    if not np.isfinite(X).all() or not X.any():
        raise ValueError("LogME needs finite features that are not all zero")
    u, s, _ = np.linalg.svd(X, full_matrices=False)
    sigma = np.zeros(d)
    sigma[: len(s)] = s**2
    scores = []
    for c in np.unique(y):
        target = (y == c).astype(np.float64)
        proj = u.T @ target
        x2 = np.zeros(d)
        x2[: len(proj)] = proj**2
        res_x2 = float(target @ target - (proj**2).sum())
        scores.append(_class_evidence(x2, max(res_x2, 0.0), sigma, n, d)[0])
    return float(np.mean(scores))
