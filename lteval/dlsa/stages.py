"""What one DLSA stage holds and the steps that build it: its flows' density
and clusters (``ensemble``), its threshold (``top_quantile``), its cluster tables
(``new_stage``), and the held-out check of its classifier (``check_split``,
``held_out_check``); ``Trace`` is what DLSA computes per sample."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lteval.data.profiles import per_class_holdout
from lteval.dlsa.config import DLSAConfig
from lteval.dlsa.density import cluster_table, score
from lteval.dlsa.flow import ensemble_log_density
from lteval.dlsa.train import StageFit
from lteval.heads import TrainedHead, balanced_accuracy, balanced_accuracy_se
from lteval.seeds import derive_seed, derived_rng


@dataclass
class Stage:
    """One fitted stage: its flows, filter threshold, cluster histograms, classifier.

    With R flows: ``hist`` (R, K, C) train class histogram per flow and cluster;
    ``kept`` / ``majority`` (R, K) the clusters kept on the stage's active train
    samples and their majority class.
    """

    gmf: StageFit
    threshold: float
    hist: np.ndarray
    kept: np.ndarray
    majority: np.ndarray
    classifier: TrainedHead | None = None
    # False: the held-out check found no gain, the regular classifier labels this stage
    accepted: bool = True
    check: str = "no check (stage_check_fraction = 0)"

    def prior(self, clusters: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """Cluster prior P (N, C) from each flow's clusters (R, N): the mean over flows
        of the class shares of the sample's cluster; with ``labels`` each sample is
        left out of its own clusters."""
        out = np.zeros((clusters.shape[1], self.hist.shape[2]), np.float32)
        for hist, cl in zip(self.hist, clusters, strict=True):
            h = hist[cl]  # (N, C) int32 counts, exact; no N x C float64 array
            if labels is not None:
                h[np.arange(len(labels)), labels] -= 1
            tot = h.sum(1, keepdims=True)
            share = h.astype(np.float32) / np.maximum(tot, 1).astype(np.float32)
            out += np.where(tot > 0, share, np.float32(1.0 / h.shape[1]))
        return out / np.float32(len(self.hist))


@dataclass
class Trace:
    """What DLSA computes for each of N samples: ``features`` (N, D) standardised;
    per stage s, ``log_density[s]`` (N,) the ensemble's log p(x), ``member_log_density[s]``
    (R, N) each flow's, and ``clusters[s]`` (R, N) each flow's GMF component; ``route``
    (N,) the claiming stage (``len(stages_)``: the regular classifier) and
    ``predictions`` (N,) the labels (of ``classes_``)."""

    features: np.ndarray
    log_density: list[np.ndarray]
    member_log_density: list[np.ndarray]
    clusters: list[np.ndarray]
    route: np.ndarray
    predictions: np.ndarray


def ensemble(gmf: StageFit, X: torch.Tensor, device: str, members: bool = False) -> tuple:
    """(ensemble log p(x) (N,), each flow's clusters (R, N)[, each flow's log p (R, N)])."""
    lp, cl = score(gmf.model, X.to(device))
    out = (ensemble_log_density(lp).numpy(), cl.numpy())
    return (*out, lp.numpy()) if members else out


def new_stage(gmf, thr, cl, y, active, K: int, C: int, cfg: DLSAConfig) -> Stage:
    """A stage's flows, threshold and per-flow cluster tables (classifier not yet fitted)."""
    R = len(cl)
    hist = np.zeros((R, K, C), np.int32)  # counts; (N, C) rows of it are gathered
    kept, majority = np.zeros((R, K), bool), np.zeros((R, K), np.int64)
    for r in range(R):
        np.add.at(hist[r], (cl[r], y), 1)
        kept[r], majority[r], _ = cluster_table(cl[r][active], y[active], K, cfg)
    return Stage(gmf, thr, hist, kept, majority)


def stage_seed(seed: int, stage: int) -> int:
    """The seed of stage ``stage`` (0-based) of a DLSA fitted with ``seed``: its
    flows, its criterion rows and its classifier derive their streams from it."""
    return derive_seed(seed, "stage", stage)


def check_split(y_val: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask (N_val,): the share ``fraction`` of validation held out from
    stage-classifier selection for the stage check (``lteval.data.per_class_holdout``;
    none when 0)."""
    return per_class_holdout(y_val, fraction, derived_rng(seed, "stage-check"))


def held_out_check(y, pred_stage, pred_regular, margin_se: float) -> tuple[bool, str]:
    """Use the stage classifier only if, on held-out validation samples the stage
    claims, its balanced accuracy beats the regular classifier's by ``margin_se``
    standard errors of the regular's balanced accuracy (``balanced_accuracy_se``:
    per class, so the few held-out samples of rare classes count as the noise they
    are)."""
    if len(y) == 0:
        return False, "rejected: no held-out validation sample reached this stage"
    a_s = balanced_accuracy(y, pred_stage)
    a_r = balanced_accuracy(y, pred_regular)
    bar = a_r + margin_se * balanced_accuracy_se(y, pred_regular)
    ok = bool(a_s > bar)
    verdict = "accepted" if ok else "rejected"
    return (
        ok,
        f"{verdict}: {a_s:.3f} vs regular {a_r:.3f} on {len(y)} held-out (bar {bar:.3f})",
    )


def top_quantile(scores: np.ndarray, rho: float) -> float:
    """Threshold putting a fraction ``rho`` of ``scores`` at or above it."""
    k = max(1, int(np.ceil(rho * len(scores))))
    return float(np.sort(scores)[::-1][k - 1])
