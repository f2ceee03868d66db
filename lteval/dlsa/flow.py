"""Gaussian-mixture normalizing flow (GMF): a masked autoregressive flow with
RealNVP batch-norm bijectors and a fixed-mean, K-component isotropic prior.

Shapes: x, u are (B, D); component log-likelihoods are (B, K). The mixture is
evaluated with one matmul (``||u||^2 - 2 u.mu^T + ||mu||^2``): no (B, K, D)
tensor is ever built.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class MaskedLinear(nn.Linear):
    """Linear layer whose weight is masked by a fixed 0/1 mask (out x in).

    The weight is stored already masked and its gradient is masked too, so masked
    entries stay exactly 0 under SGD: the same values as multiplying by the mask in
    every forward pass, without that (D x H) product at each call. Code that
    re-initialises ``weight`` must call ``apply_mask()`` afterwards.
    """

    def __init__(self, d_in: int, d_out: int, mask: torch.Tensor):
        super().__init__(d_in, d_out)
        self.register_buffer("mask", mask.float())
        self.apply_mask()
        self.weight.register_hook(lambda g: g * self.mask)

    @torch.no_grad()
    def apply_mask(self) -> None:
        """Zero the masked entries of the weight (call after re-initialising it)."""
        self.weight.mul_(self.mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class MADE(nn.Module):
    """One autoregressive block: D -> H -> H -> 2D giving (m, a).

    ``order`` holds the degree (1..D) of each input; output j of (m, a) depends
    only on inputs of lower degree. ``u = (x - m) * exp(-a)``, ``log|det| = -sum(a)``.
    """

    def __init__(self, dim: int, hidden: int, order: torch.Tensor, init_std: float | None = 1e-3):
        super().__init__()
        hid_deg = torch.arange(hidden) % max(1, dim - 1) + 1
        m1 = hid_deg[:, None] >= order[None, :]
        m2 = hid_deg[:, None] >= hid_deg[None, :]
        out_deg = torch.cat([order, order])
        m3 = out_deg[:, None] > hid_deg[None, :]
        self.net = nn.Sequential(
            MaskedLinear(dim, hidden, m1),
            nn.ReLU(),
            MaskedLinear(hidden, hidden, m2),
            nn.ReLU(),
            MaskedLinear(hidden, 2 * dim, m3),
        )
        if init_std is not None:  # start close to the identity map
            last = self.net[-1]
            nn.init.normal_(last.weight, std=init_std)
            last.apply_mask()
            nn.init.zeros_(last.bias)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m, a = self.net(x).float().split(self.dim, dim=1)  # fp32 even under autocast
        return (x - m) * torch.exp(-a), -a.sum(1)


class BatchNormBijector(nn.Module):
    """RealNVP batch norm: ``u = (x - mean) / sqrt(var + eps) * exp(log_gamma) + beta``.

    Training uses batch statistics and updates running ones with ``momentum``
    (running = momentum * running + (1 - momentum) * batch); eval uses the
    running ones. ``log|det| = sum(log_gamma - 0.5 * log(var + eps))``.
    """

    def __init__(self, dim: int, momentum: float = 0.9, eps: float = 1e-5):
        super().__init__()
        self.log_gamma = nn.Parameter(torch.zeros(dim))
        self.beta = nn.Parameter(torch.zeros(dim))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))
        self.momentum, self.eps = momentum, eps

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training and x.shape[0] > 1:
            mean, var = x.mean(0), x.var(0, unbiased=False)
            with torch.no_grad():
                self.running_mean.mul_(self.momentum).add_((1 - self.momentum) * mean)
                self.running_var.mul_(self.momentum).add_((1 - self.momentum) * var)
        else:
            mean, var = self.running_mean, self.running_var
        u = (x - mean) / torch.sqrt(var + self.eps) * torch.exp(self.log_gamma) + self.beta
        logdet = (self.log_gamma - 0.5 * torch.log(var + self.eps)).sum()
        return u, logdet.expand(x.shape[0])


class MAF(nn.Module):
    """``blocks`` MADE blocks (input order reversed in each following block), each
    followed by a batch-norm bijector. ``forward(x) -> (u, log|det du/dx|)``."""

    def __init__(
        self,
        dim: int,
        hidden: int | None = None,
        blocks: int = 2,
        bn_momentum: float = 0.9,
        init_std: float | None = 1e-3,
    ):
        super().__init__()
        hidden = hidden or dim
        layers = []
        order = torch.arange(1, dim + 1)
        for _ in range(blocks):
            layers += [MADE(dim, hidden, order, init_std), BatchNormBijector(dim, bn_momentum)]
            order = order.flip(0)
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet


def fixed_means(num_clusters: int, dim: int, std: float = 0.05, seed: int = 0) -> torch.Tensor:
    """The prior's K means: (K, D), drawn once from N(0, std^2) and never learned."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(num_clusters, dim, generator=gen) * std


def component_log_prob(u: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """``log N(u; mu_k, I)`` for every k: (B, K), via one matmul."""
    sq = (u * u).sum(1, keepdim=True) - 2 * u @ means.T + (means * means).sum(1)[None, :]
    return -0.5 * sq - 0.5 * u.shape[1] * math.log(2 * math.pi)


class GMF(nn.Module):
    """Flow plus fixed-mean equal-weight mixture prior.

    ``forward(x) -> (B, K)`` log p(x | k) = log N(u; mu_k, I) + log|det|.
    """

    def __init__(
        self,
        dim: int,
        num_clusters: int,
        hidden: int | None = None,
        prior_std: float = 0.05,
        bn_momentum: float = 0.9,
        seed: int = 0,
        init_std: float | None = 1e-3,
    ):
        super().__init__()
        self.flow = MAF(dim, hidden, 2, bn_momentum, init_std)
        self.register_buffer("means", fixed_means(num_clusters, dim, prior_std, seed))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.components(*self.flow(x))

    def components(self, u: torch.Tensor, logdet: torch.Tensor) -> torch.Tensor:
        """(B, K) log p(x | k) from the flow's output u (B, D) and log|det| (B,)."""
        return component_log_prob(u, self.means) + logdet[:, None]

    @staticmethod
    def log_px(comp: torch.Tensor) -> torch.Tensor:
        """Mixture log-density ``logsumexp_k log p(x|k) - log K`` from (B, K): (B,)."""
        return torch.logsumexp(comp, 1) - math.log(comp.shape[1])
