"""Gaussian-mixture normalizing flow (GMF): a masked autoregressive flow with
RealNVP batch-norm bijectors and a fixed-mean, K-component isotropic prior.

Every module holds R independent *members* (an ensemble of flows) with weights
that carry a leading R axis, so R flows train as one batched model: one batched
matmul per layer, no Python loop over members. Member r is initialised from its
own seed only (``member_seeds``), so it is the flow a single-member GMF with that
seed would be.

Shapes: x, u are (R, B, D) (a 2-D (B, D) input is shared by every member); log|det|
is (R, B); component log-likelihoods are (R, B, K). The mixture is evaluated with
one batched matmul (``||u||^2 - 2 u.mu^T + ||mu||^2``): no (B, K, D) tensor is built.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from lteval.seeds import derive_seed, torch_generator


def member_seeds(seed: int, members: int) -> list[int]:
    """The seed of each of ``members`` flows: ``seed`` itself for the first (so a
    one-member ensemble is the single flow of that seed), then
    ``derive_seed(seed, "flow", r)``. A member draws its weights and its prior means
    from two streams derived from its seed ("weights", "means")."""
    return [seed] + [derive_seed(seed, "flow", r) for r in range(1, members)]


def _lift(x: torch.Tensor, members: int) -> torch.Tensor:
    """(R, B, D) from a shared (B, D) input or an (R, B, D) one."""
    if x.dim() == 2:
        return x.unsqueeze(0).expand(members, *x.shape)
    if x.dim() != 3 or x.shape[0] != members:
        raise ValueError(f"expected (B, D) or ({members}, B, D) input, got {tuple(x.shape)}")
    return x


class MaskedLinear(nn.Module):
    """R linear layers ``x @ W_r + b_r`` whose weights W (R, in, out) share a fixed 0/1
    mask (in, out).

    W is stored input-major, so the batched matmul and its weight gradient are both
    contiguous (the (out, in) layout of ``nn.Linear`` made the gradient's mask
    product and the optimizer's copies stride through memory: a third of a step).
    The weight is stored already masked and its gradient is masked too, so masked
    entries stay exactly 0 under any optimizer step: the same values as multiplying
    by the mask in every forward pass, without that product at each call. Code that
    re-initialises ``weight`` must call ``apply_mask()`` afterwards.
    """

    def __init__(self, d_in: int, d_out: int, mask: torch.Tensor, members: int = 1):
        """``mask``: (out, in), 1 where output j may depend on input i."""
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(members, d_in, d_out))
        self.bias = nn.Parameter(torch.zeros(members, d_out))
        self.register_buffer("mask", mask.float().T.contiguous())
        self.weight.register_hook(lambda g: g * self.mask)

    @torch.no_grad()
    def init_member(self, r: int, gen: torch.Generator | None) -> None:
        """``nn.Linear``'s default initialisation, U(-1/sqrt(in), 1/sqrt(in)), of member r."""
        bound = 1 / math.sqrt(self.weight.shape[1])
        w = torch.rand(self.weight.shape[1:], generator=gen) * (2 * bound) - bound
        b = torch.rand(self.bias.shape[1:], generator=gen) * (2 * bound) - bound
        self.weight[r].copy_(w * self.mask)
        self.bias[r].copy_(b)

    @torch.no_grad()
    def apply_mask(self) -> None:
        """Zero the masked entries of the weight (call after re-initialising it)."""
        self.weight.mul_(self.mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(R, B, in) -> (R, B, out)."""
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)


def hidden_degrees(dim: int, hidden: int) -> torch.Tensor:
    """MADE degrees (1..D-1) of the ``hidden`` units: cyclic when hidden >= D - 1 (every
    degree used), else spread evenly over 1..D-1 so that a narrow MADE still
    conditions on inputs of every degree."""
    top = max(1, dim - 1)
    if hidden >= top:
        return torch.arange(hidden) % top + 1
    return torch.arange(hidden) * top // hidden + 1


class MADE(nn.Module):
    """One autoregressive block: D -> H -> H -> 2D giving (m, a), for R members.

    ``order`` holds the degree (1..D) of each input; output j of (m, a) depends
    only on inputs of lower degree. ``u = (x - m) * exp(-a)``, ``log|det| = -sum(a)``.
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        order: torch.Tensor,
        init_std: float | None = 1e-3,
        members: int = 1,
        generators: list[torch.Generator] | None = None,
    ):
        """``generators``: one per member, drawn from in turn (None: torch's global
        generator for every member)."""
        super().__init__()
        hid_deg = hidden_degrees(dim, hidden)
        m1 = hid_deg[:, None] >= order[None, :]
        m2 = hid_deg[:, None] >= hid_deg[None, :]
        out_deg = torch.cat([order, order])
        m3 = out_deg[:, None] > hid_deg[None, :]
        self.net = nn.Sequential(
            MaskedLinear(dim, hidden, m1, members),
            nn.ReLU(),
            MaskedLinear(hidden, hidden, m2, members),
            nn.ReLU(),
            MaskedLinear(hidden, 2 * dim, m3, members),
        )
        self.dim, self.members, self.init_std = dim, members, init_std
        for r in range(members):
            self.init_member(r, generators[r] if generators else None)

    @torch.no_grad()
    def init_member(self, r: int, gen: torch.Generator | None) -> None:
        """Member r's initial weights; with ``init_std`` the output layer starts near
        zero (a flow close to the identity map)."""
        for layer in self.net:
            if isinstance(layer, MaskedLinear):
                layer.init_member(r, gen)
        if self.init_std is not None:
            last = self.net[-1]
            w = torch.randn(last.weight.shape[1:], generator=gen) * self.init_std
            last.weight[r].copy_(w * last.mask)
            last.bias[r].zero_()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _lift(x, self.members)
        m, a = self.net(x).float().split(self.dim, dim=2)  # fp32 even under autocast
        return (x - m) * torch.exp(-a), -a.sum(2)


class BatchNormBijector(nn.Module):
    """RealNVP batch norm: ``u = (x - mean) / sqrt(var + eps) * exp(log_gamma) + beta``,
    per member (parameters and statistics (R, D)).

    Training uses batch statistics (over the rows ``weight`` marks, when given) and
    updates running ones with ``momentum`` (running = momentum * running + (1 -
    momentum) * batch); eval uses the running ones.
    ``log|det| = sum(log_gamma - 0.5 * log(var + eps))``.
    """

    def __init__(self, dim: int, momentum: float = 0.9, eps: float = 1e-5, members: int = 1):
        super().__init__()
        self.log_gamma = nn.Parameter(torch.zeros(members, dim))
        self.beta = nn.Parameter(torch.zeros(members, dim))
        self.register_buffer("running_mean", torch.zeros(members, dim))
        self.register_buffer("running_var", torch.ones(members, dim))
        self.momentum, self.eps, self.members = momentum, eps, members

    def forward(
        self, x: torch.Tensor, weight: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (R, B, D); ``weight`` (R, B) 0/1: the rows of each member's batch (padding
        rows get 0 and do not enter the batch statistics)."""
        x = _lift(x, self.members)
        if self.training and x.shape[1] > 1:
            if weight is None:
                mean, var = x.mean(1), x.var(1, unbiased=False)
            else:
                w = (weight / weight.sum(1, keepdim=True)).unsqueeze(2)
                mean = (w * x).sum(1)
                var = (w * (x - mean.unsqueeze(1)) ** 2).sum(1)
            with torch.no_grad():
                self.running_mean.mul_(self.momentum).add_((1 - self.momentum) * mean)
                self.running_var.mul_(self.momentum).add_((1 - self.momentum) * var)
        else:
            mean, var = self.running_mean, self.running_var
        scale = torch.exp(self.log_gamma) / torch.sqrt(var + self.eps)
        u = (x - mean.unsqueeze(1)) * scale.unsqueeze(1) + self.beta.unsqueeze(1)
        logdet = (self.log_gamma - 0.5 * torch.log(var + self.eps)).sum(1)
        return u, logdet[:, None].expand(x.shape[0], x.shape[1])


class MAF(nn.Module):
    """``blocks`` MADE blocks (input order reversed in each following block), each
    followed by a batch-norm bijector, for R members. ``forward(x) -> (u, log|det|)``."""

    def __init__(
        self,
        dim: int,
        hidden: int | None = None,
        blocks: int = 2,
        bn_momentum: float = 0.9,
        init_std: float | None = 1e-3,
        members: int = 1,
        generators: list[torch.Generator] | None = None,
    ):
        """``generators``: one per member; the blocks draw from them in order."""
        super().__init__()
        hidden = hidden or dim
        layers = []
        order = torch.arange(1, dim + 1)
        for _ in range(blocks):
            layers += [
                MADE(dim, hidden, order, init_std, members, generators),
                BatchNormBijector(dim, bn_momentum, members=members),
            ]
            order = order.flip(0)
        self.layers = nn.ModuleList(layers)
        self.members = members

    def forward(
        self, x: torch.Tensor, weight: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = _lift(x, self.members)
        logdet = torch.zeros(x.shape[:2], device=x.device, dtype=x.dtype)
        for layer in self.layers:
            x, ld = layer(x, weight) if isinstance(layer, BatchNormBijector) else layer(x)
            logdet = logdet + ld
        return x, logdet


def fixed_means(num_clusters: int, dim: int, std: float = 0.05, seed: int = 0) -> torch.Tensor:
    """The prior's K means: (K, D), drawn once from N(0, std^2) (the stream "means"
    of ``seed``) and never learned."""
    gen = torch_generator(seed, "means")
    return torch.randn(num_clusters, dim, generator=gen) * std


def component_log_prob(u: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """``log N(u; mu_k, I)`` for every k: (R, B, K) from u (R, B, D) and means
    (R, K, D) via one batched matmul (2-D u (B, D) and means (K, D) give (B, K))."""
    sq = (u * u).sum(-1, keepdim=True) - 2 * u @ means.transpose(-1, -2)
    sq = sq + (means * means).sum(-1).unsqueeze(-2)
    return -0.5 * sq - 0.5 * u.shape[-1] * math.log(2 * math.pi)


class GMF(nn.Module):
    """R flows, each with its own fixed-mean equal-weight mixture prior.

    ``forward(x) -> (R, B, K)`` log p(x | k) = log N(u; mu_k, I) + log|det| per member.
    Member r's weights and prior means come from ``seeds[r]`` alone (default:
    ``member_seeds(seed, members)``).
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
        members: int = 1,
    ):
        super().__init__()
        self.seeds = member_seeds(seed, members)
        gens = [torch_generator(s, "weights") for s in self.seeds]
        self.flow = MAF(dim, hidden, 2, bn_momentum, init_std, members, gens)
        means = [fixed_means(num_clusters, dim, prior_std, s) for s in self.seeds]
        self.register_buffer("means", torch.stack(means))
        self.members = members

    def forward(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return self.components(*self.flow(x, weight))

    def subset(self, keep: list[int]) -> GMF:
        """A GMF of the members ``keep`` only (copies; this one is unchanged)."""
        new = copy.deepcopy(self)
        idx = torch.as_tensor(keep, dtype=torch.long)
        for mod in new.modules():
            for name, p in list(mod.named_parameters(recurse=False)):
                setattr(mod, name, nn.Parameter(p.detach()[idx].clone()))
            for name, b in list(mod.named_buffers(recurse=False)):
                if name != "mask":
                    setattr(mod, name, b[idx].clone())
            if hasattr(mod, "members"):
                mod.members = len(keep)
        new.seeds = [self.seeds[r] for r in keep]
        return new

    def components(self, u: torch.Tensor, logdet: torch.Tensor) -> torch.Tensor:
        """(R, B, K) log p(x | k) from the flow's output u (R, B, D) and log|det| (R, B)."""
        return component_log_prob(u, self.means) + logdet.unsqueeze(-1)

    @staticmethod
    def log_px(comp: torch.Tensor) -> torch.Tensor:
        """Mixture log-density ``logsumexp_k log p(x|k) - log K`` over the last axis."""
        return torch.logsumexp(comp, -1) - math.log(comp.shape[-1])


def ensemble_log_density(member_lp: torch.Tensor) -> torch.Tensor:
    """The ensemble's log-density from its members' (R, N): ``log mean_r p_r(x)``, the
    log-density of the equal-weight mixture of the R flows (itself a density)."""
    return torch.logsumexp(member_lp, 0) - math.log(member_lp.shape[0])
