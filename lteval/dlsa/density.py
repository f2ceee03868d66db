"""Scoring samples with a trained GMF ensemble: per-member log-densities and
clusters, batch-norm recalibration, and the cluster table of the epoch choice."""

from __future__ import annotations

import numpy as np
import torch

from lteval.dlsa.config import DLSAConfig
from lteval.dlsa.flow import GMF, BatchNormBijector, _lift


@torch.no_grad()
def score(
    model: GMF, X: torch.Tensor, batch: int = 4096, recalibrate: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(x) (R, N), cluster (R, N)) of ``X`` (N, D) under each of the model's R
    flows, in eval mode, returned on the CPU.

    One layer-wise sweep over all of X (each layer in batches of ``batch`` rows),
    so each layer runs once per sample. With ``recalibrate``, each batch-norm
    bijector's running statistics are first set to those of its input over X (per
    member), as in ``recalibrate_bn``, in the same sweep.
    """
    model.eval()
    R = model.members
    if len(X) == 0:
        return torch.zeros(R, 0), torch.zeros(R, 0, dtype=torch.long)
    h = X
    logdet = torch.zeros(R, len(X), device=X.device, dtype=X.dtype)
    for layer in model.flow.layers:
        if recalibrate and isinstance(layer, BatchNormBijector):
            _set_running_stats(layer, _lift(h, R), batch)
        parts = [layer(h[..., s : s + batch, :]) for s in range(0, len(X), batch)]
        h = torch.cat([u for u, _ in parts], 1)
        logdet += torch.cat([ld for _, ld in parts], 1)
    lp, cl = [], []
    for s in range(0, len(X), batch):
        comp = model.components(h[:, s : s + batch], logdet[:, s : s + batch])
        lp.append(GMF.log_px(comp))
        cl.append(comp.argmax(2))
    return torch.cat(lp, 1).cpu(), torch.cat(cl, 1).cpu()


def _set_running_stats(layer: BatchNormBijector, h: torch.Tensor, batch: int) -> None:
    """Exact per-member mean and (biased) variance of ``h`` (R, N, D), in float64 sums."""
    s1 = torch.zeros(h.shape[0], h.shape[2], dtype=torch.float64, device=h.device)
    s2 = torch.zeros_like(s1)
    n = h.shape[1]
    for start in range(0, n, batch):
        b = h[:, start : start + batch].double()
        s1 += b.sum(1)
        s2 += (b * b).sum(1)
    mean = s1 / n
    var = (s2 / n - mean * mean).clamp_min(0)
    layer.running_mean.copy_(mean.to(layer.running_mean.dtype))
    layer.running_var.copy_(var.to(layer.running_var.dtype))


@torch.no_grad()
def recalibrate_bn(model: GMF, X: torch.Tensor, batch: int = 4096) -> None:
    """Set every batch-norm bijector's running statistics to those of ``X`` (N, D).

    Layer by layer: the statistics of a bijector's input are computed over all of X
    (in float64 sums, in batches) with the earlier bijectors already recalibrated,
    so eval-mode scoring normalises with the statistics of the very samples scored
    rather than a moving average over class-balanced training batches. Training
    calls ``score(..., recalibrate=True)``, which does this and scores in one sweep.
    """
    if len(X):
        score(model, X, batch, recalibrate=True)


def cluster_table(
    clusters: np.ndarray, y: np.ndarray, K: int, cfg: DLSAConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cluster, (K,) each: kept (purity > ``purity_threshold`` and size >
    ``min_cluster_size``), majority class, and size, of the samples' ``clusters`` (N,)
    and labels ``y`` (N,) (one flow's clusters)."""
    C = int(y.max()) + 1 if len(y) else 1
    hist = np.zeros((K, C), dtype=np.int64)
    np.add.at(hist, (clusters, y), 1)
    size = hist.sum(1)
    purity = np.where(size > 0, hist.max(1) / np.maximum(size, 1), 0.0)
    kept = (purity > cfg.purity_threshold) & (size > cfg.min_cluster_size)
    return kept, hist.argmax(1), size


def cluster_stats(clusters: np.ndarray, y: np.ndarray, K: int, cfg: DLSAConfig) -> tuple[int, int]:
    """(kept clusters, largest cluster size) of one flow's ``clusters`` (N,): kept =
    purity > threshold and size > minimum."""
    kept, _, size = cluster_table(clusters, y, K, cfg)
    return int(kept.sum()), int(size.max())
