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


def logme(X: np.ndarray, y: np.ndarray, chunk: int = 65536) -> float:
    """LogME of features X (N, D) for integer labels y (N,). Higher is better.

    With N > D it works, as the original method does, from the D x D Gram matrix
    ``X^T X`` (accumulated in float64 over ``chunk`` rows, so memory is O(D^2 + C D),
    not the N x D left singular vectors) and the per-class sums ``X^T y_k``; with
    N <= D from the thin SVD of X. The two agree to 1e-6 (tests/test_heads.py).
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"X must be (N, D) with N = len(y); got {X.shape} and {y.shape}")
    n, d = X.shape
    if not np.isfinite(X).all() or not X.any():
        raise ValueError("LogME needs finite features that are not all zero")
    classes, yi = np.unique(y, return_inverse=True)
    if n > d:
        sigma, x2, res_x2 = _gram_projections(X, yi, len(classes), chunk)
    else:
        sigma, x2, res_x2 = _svd_projections(np.asarray(X, np.float64), yi, len(classes))
    scores = [_class_evidence(x2[k], res_x2[k], sigma, n, d)[0] for k in range(len(classes))]
    return float(np.mean(scores))


def _svd_projections(X: np.ndarray, yi: np.ndarray, C: int):
    """(sigma (D,), x2 (C, D), res_x2 (C,)) from the thin SVD of X (N <= D)."""
    n, d = X.shape
    u, s, _ = np.linalg.svd(X, full_matrices=False)
    sigma = np.zeros(d)
    sigma[: len(s)] = s**2
    x2 = np.zeros((C, d))
    res_x2 = np.zeros(C)
    for k in range(C):
        target = (yi == k).astype(np.float64)
        proj = u.T @ target
        x2[k, : len(proj)] = proj**2
        res_x2[k] = max(float(target @ target - (proj**2).sum()), 0.0)
    return sigma, x2, res_x2


def _gram_projections(X: np.ndarray, yi: np.ndarray, C: int, chunk: int):
    """(sigma (D,), x2 (C, D), res_x2 (C,)) from X^T X and the class sums (N > D).

    With X = U S V^T: u_i^T y_k = v_i^T (X^T y_k) / s_i. Directions with a
    numerically zero singular value (below 1e-12 of the largest) carry their
    energy in the residual, exactly as in the SVD path, where they add x2 with
    no evidence term.
    """
    n, d = X.shape
    gram = np.zeros((d, d))
    sums = np.zeros((C, d))
    for start in range(0, n, chunk):
        Xc = np.asarray(X[start : start + chunk], np.float64)
        gram += Xc.T @ Xc
        np.add.at(sums, yi[start : start + chunk], Xc)
    sigma, V = np.linalg.eigh(gram)
    sigma = sigma[::-1].clip(min=0.0)
    V = V[:, ::-1]
    live = sigma > 1e-12 * sigma[0]
    proj = np.zeros((C, d))
    proj[:, live] = (sums @ V[:, live]) / np.sqrt(sigma[live])
    sigma = np.where(live, sigma, 0.0)
    counts = np.bincount(yi, minlength=C).astype(np.float64)  # ||y_k||^2
    x2 = proj**2
    res_x2 = np.maximum(counts - x2.sum(1), 0.0)
    x2[:, ~live] = 0.0  # their share is in res_x2 already
    return sigma, x2, res_x2
