"""Long-tailed training methods for the small CNN (``lteval.backbones.small_cnn``),
each from its paper's formula, so that the validation study can compare features of
one architecture trained on the long-tailed data by different methods.

With n_c the train count of class c, pi_c = n_c / N, z the logits, y the label:

- ``ce``: cross-entropy, ``-log softmax(z)_y``.
- ``cb-sampling``: cross-entropy on class-balanced batches (each class equally
  likely, samples drawn with replacement; Kang et al., ICLR 2020, "Decoupling
  representation and classifier").
- ``balanced-softmax``: ``-log softmax(z + log n)_y`` (Ren et al., NeurIPS 2020).
- ``logit-adjusted``: ``-log softmax(z + tau log pi)_y`` with tau = 1 (Menon et al.,
  ICLR 2021). With tau = 1 it equals Balanced Softmax up to a constant shift of the
  logits, which softmax ignores: the two differ only by floating-point rounding.
- ``ldam-drw``: LDAM (Cao et al., NeurIPS 2019): a cosine classifier,
  ``z_c = s cos(f, w_c)`` with s = 30, and the true class's logit lowered by the
  margin ``m_y = C_m / n_y^(1/4)``, C_m set so the largest margin is 0.5; deferred
  re-weighting (DRW) from 80% of the epochs on, class weights
  ``(1 - beta) / (1 - beta^n_c)`` (beta = 0.9999, the effective number of Cui et
  al., CVPR 2019), normalised to sum to C (DRW starts at epoch floor(0.8 epochs):
  at 1 epoch, from the start).
- ``supcon``: the supervised contrastive loss (Khosla et al., NeurIPS 2020, L_out)
  over two augmented views, on an L2-normalised 128-d projection of the features,
  temperature 0.1 (the views: the batch shifted by two random offsets, one per view
  for the whole batch: a weak augmentation), plus cross-entropy of the linear
  classifier on the first view
  (as PaCo, Cui et al., ICCV 2021, trains a contrastive and a classification loss
  together; PaCo's parametric class centres are left out).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

METHODS = ("ce", "cb-sampling", "balanced-softmax", "logit-adjusted", "ldam-drw", "supcon")
LDAM_SCALE, LDAM_MAX_MARGIN, DRW_START, DRW_BETA = 30.0, 0.5, 0.8, 0.9999
SUPCON_TEMPERATURE = 0.1


def epoch_order(y: torch.Tensor, method: str, gen: torch.Generator) -> torch.Tensor:
    """The row order (N,) of one epoch: a permutation, or for ``cb-sampling`` N
    class-balanced draws with replacement."""
    if method == "cb-sampling":
        counts = torch.bincount(y).double()
        return torch.multinomial(1.0 / counts[y], len(y), replacement=True, generator=gen)
    return torch.randperm(len(y), generator=gen)


def ldam_margins(counts: torch.Tensor) -> torch.Tensor:
    """m_c = C_m / n_c^(1/4), the largest 0.5 (classes without samples: 0)."""
    m = torch.where(counts > 0, counts.double().clamp_min(1) ** -0.25, torch.zeros(()))
    return (m * (LDAM_MAX_MARGIN / m.max())).float()


def drw_weights(counts: torch.Tensor) -> torch.Tensor:
    """Class weights (1 - beta) / (1 - beta^n_c), normalised to sum to C."""
    w = (1 - DRW_BETA) / (1 - DRW_BETA ** counts.double().clamp_min(1))
    return (w / w.sum() * len(counts)).float()


def supcon(z: torch.Tensor, y: torch.Tensor, temperature: float = SUPCON_TEMPERATURE):
    """L_out of Khosla et al.: z (2B, d) L2-normalised projections of two views, y
    (2B,) labels; the mean over anchors with a positive of -mean_p log
    softmax_{a != i}(z_i . z_a / T)_p."""
    sim = z @ z.T / temperature
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = (y[:, None] == y[None, :]) & ~self_mask
    n_pos = pos.sum(1)
    has = n_pos > 0
    if not has.any():  # no anchor has a positive: nothing to pull together
        return z.sum() * 0.0
    mean_pos = log_prob.masked_fill(~pos, 0.0).sum(1)[has] / n_pos[has]
    return -mean_pos.mean()


class Objective:
    """The loss of ``method`` on a batch, given the train class counts (C,)."""

    def __init__(self, method: str, counts: torch.Tensor, epochs: int):
        if method not in METHODS:
            raise ValueError(f"method = {method!r}; choose one of {', '.join(METHODS)}")
        self.method, self.epochs = method, epochs
        self.log_n = torch.log(counts.float().clamp_min(1e-12))
        self.log_prior = torch.log(counts.float().clamp_min(1e-12) / counts.sum())
        self.margins = ldam_margins(counts)
        self.weights = drw_weights(counts)

    def __call__(self, logits: torch.Tensor, y: torch.Tensor, epoch: int) -> torch.Tensor:
        """Loss of ``logits`` (B, C) for labels ``y`` (B,) at ``epoch`` (0-based)."""
        if self.method == "balanced-softmax":
            return F.cross_entropy(logits + self.log_n, y)
        if self.method == "logit-adjusted":
            return F.cross_entropy(logits + self.log_prior, y)  # tau = 1
        if self.method == "ldam-drw":  # logits are s cos(f, w): lower the true class's
            shifted = logits - LDAM_SCALE * F.one_hot(y, len(self.margins)) * self.margins[y, None]
            drw = epoch >= int(DRW_START * self.epochs)
            return F.cross_entropy(shifted, y, weight=self.weights if drw else None)
        return F.cross_entropy(logits, y)  # ce, cb-sampling, and supcon's classifier
