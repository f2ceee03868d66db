"""Training one stage's GMF: pair sampler, the three losses, epoch selection."""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from lteval.dlsa.config import CHOICES, DLSAConfig
from lteval.dlsa.flow import GMF, BatchNormBijector
from lteval.fields import not_a_choice
from lteval.heads.seeding import seeded_torch


class PairSampler:
    """Vectorised pair sampler over labelled rows.

    Each pair: an anchor class a and a different class b drawn uniformly among the
    classes present, then one random sample of each (see ``batch``). With a single
    class present the "other" sample comes from the same class. All on tensors, seeded.
    """

    def __init__(self, y: torch.Tensor, generator: torch.Generator):
        self.order = torch.argsort(y, stable=True)
        self.classes, counts = torch.unique(y, return_counts=True)
        self.counts = counts
        self.starts = torch.cumsum(counts, 0) - counts
        self.gen = generator

    def _pick(self, cls: torch.Tensor) -> torch.Tensor:
        r = torch.rand(len(cls), generator=self.gen)
        pos = self.starts[cls] + (r * self.counts[cls]).long().clamp_max(self.counts[cls] - 1)
        return self.order[pos]

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One forward batch for ``n`` pairs: (rows, anchor class positions, other index).

        ``rows[:n]`` are the anchors. Pair j's "other" is ``rows[other[j]]``: a
        uniformly random anchor of class b_j from this same batch when the batch holds
        one (each anchor is itself a uniform draw of its class, so the other is a
        uniform draw of class b_j), else a fresh draw appended after the anchors.
        This halves the flow's work against a separate forward of n others.
        """
        C = len(self.classes)
        a = torch.randint(0, C, (n,), generator=self.gen)
        if C > 1:
            b = torch.randint(0, C - 1, (n,), generator=self.gen)
            b = b + (b >= a).long()
        else:
            b = a
        by_class = torch.argsort(a, stable=True)
        cnt = torch.bincount(a, minlength=C)
        start = torch.cumsum(cnt, 0) - cnt
        r = torch.rand(n, generator=self.gen)
        has = cnt[b] > 0
        other = torch.empty(n, dtype=torch.long)
        hb = b[has]
        other[has] = by_class[start[hb] + (r[has] * cnt[hb]).long().clamp_max(cnt[hb] - 1)]
        missing = (~has).nonzero().squeeze(1)
        other[missing] = n + torch.arange(len(missing))
        return torch.cat([self._pick(a), self._pick(b[missing])]), a, other


@dataclass
class StageFit:
    """A trained GMF and how its epoch was chosen."""

    model: GMF
    epoch: int
    kept_clusters: int
    selection: str
    history: list[dict] = field(default_factory=list)
    # the untrained flow's count: initial weights, batch-norm bijectors at their
    # initial identity statistics (inputs are z-scored), before any step
    kept_clusters_initial: int = 0

    @property
    def usable(self) -> bool:
        """False when not one epoch finished with a finite loss (the flow diverged)."""
        return bool(self.history)


def class_weights(counts: torch.Tensor, q: float) -> torch.Tensor:
    """``w_c = (n_max / n_c) ** q`` normalised to sum to 1 over the classes."""
    w = (counts.max() / counts.float()) ** q
    return w / w.sum()


@torch.no_grad()
def score(
    model: GMF, X: torch.Tensor, batch: int = 4096, recalibrate: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(x) (N,), cluster (N,)) of ``X`` (N, D) in eval mode, on the CPU.

    One layer-wise sweep over all of X (each layer in batches of ``batch`` rows),
    so each layer runs once per sample. With ``recalibrate``, each batch-norm
    bijector's running statistics are first set to those of its input over X, as
    in ``recalibrate_bn``, in the same sweep.
    """
    model.eval()
    if len(X) == 0:
        return torch.zeros(0), torch.zeros(0, dtype=torch.long)
    h = X
    logdet = torch.zeros(len(X), device=X.device, dtype=X.dtype)
    for layer in model.flow.layers:
        if recalibrate and isinstance(layer, BatchNormBijector):
            _set_running_stats(layer, h, batch)
        parts = [layer(h[s : s + batch]) for s in range(0, len(X), batch)]
        h = torch.cat([u for u, _ in parts])
        logdet += torch.cat([ld for _, ld in parts])
    lp, cl = [], []
    for s in range(0, len(X), batch):
        comp = model.components(h[s : s + batch], logdet[s : s + batch])
        lp.append(GMF.log_px(comp))
        cl.append(comp.argmax(1))
    return torch.cat(lp).cpu(), torch.cat(cl).cpu()


def _set_running_stats(layer: BatchNormBijector, h: torch.Tensor, batch: int) -> None:
    """Exact mean and (biased) variance of ``h`` (N, D), in float64 sums over batches."""
    s1 = torch.zeros(h.shape[1], dtype=torch.float64, device=h.device)
    s2 = torch.zeros_like(s1)
    for start in range(0, len(h), batch):
        b = h[start : start + batch].double()
        s1 += b.sum(0)
        s2 += (b * b).sum(0)
    mean = s1 / len(h)
    var = (s2 / len(h) - mean * mean).clamp_min(0)
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
    and labels ``y`` (N,)."""
    C = int(y.max()) + 1 if len(y) else 1
    hist = np.zeros((K, C), dtype=np.int64)
    np.add.at(hist, (clusters, y), 1)
    size = hist.sum(1)
    purity = np.where(size > 0, hist.max(1) / np.maximum(size, 1), 0.0)
    kept = (purity > cfg.purity_threshold) & (size > cfg.min_cluster_size)
    return kept, hist.argmax(1), size


def cluster_stats(clusters: np.ndarray, y: np.ndarray, K: int, cfg: DLSAConfig) -> tuple[int, int]:
    """(kept clusters, largest cluster size): kept = purity > threshold and size > minimum."""
    kept, _, size = cluster_table(clusters, y, K, cfg)
    return int(kept.sum()), int(size.max())


@contextlib.contextmanager
def deterministic(device: str) -> Iterator[None]:
    """Bitwise run-to-run reproducibility on CPU for the enclosed work.

    With two or more threads, some CPU kernels (the accumulation in the backward of
    an indexed gather among them) otherwise sum in a varying order; lteval measured
    log p(x) differing by ~1e-4 between two identical runs, enough to move an
    epoch choice. The previous global setting is restored on exit.
    """
    if torch.device(device).type != "cpu":
        yield
        return
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def make_optimizer(model: GMF, cfg: DLSAConfig) -> torch.optim.Optimizer:
    """The GMF optimizer: plain SGD (the method page's) or Adam, at ``flow_lr``.

    Adam uses torch's fused kernel (one pass over all parameters; about 5 ms per
    step against 40 ms for the per-tensor loop at D = 1280 on 2 CPU cores).
    """
    if cfg.flow_optimizer == "adam":
        fused = torch.device(cfg.device).type in ("cpu", "cuda")
        return torch.optim.Adam(model.parameters(), lr=cfg.flow_lr, fused=fused or None)
    if cfg.flow_optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.flow_lr)
    raise ValueError(not_a_choice("flow_optimizer", cfg.flow_optimizer, CHOICES["flow_optimizer"]))


def training_dtype(cfg: DLSAConfig) -> torch.dtype | None:
    """The autocast dtype of GMF training steps (None: plain float32); ValueError
    for a ``flow_autocast`` other than "auto", "bfloat16" or "float32"."""
    if cfg.flow_autocast == "float32":
        return None
    if cfg.flow_autocast == "bfloat16":
        return torch.bfloat16
    if cfg.flow_autocast != "auto":
        raise ValueError(not_a_choice("flow_autocast", cfg.flow_autocast, CHOICES["flow_autocast"]))
    if torch.device(cfg.device).type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    checks = [getattr(torch.cpu, f"_is_{f}_supported", None) for f in ("avx512_bf16", "amx_tile")]
    native = any(check() for check in checks if callable(check))
    return torch.bfloat16 if native else None


def fit_stage(X: torch.Tensor, y: torch.Tensor, cfg: DLSAConfig, seed: int) -> StageFit:
    """Train a GMF on the active train rows (X (N, D) standardised, y (N,)).

    Loss = l_lh * L_lh + l_bal * L_bal + l_pur * L_pur (see the method page).
    The epoch kept has the most "kept" clusters among epochs whose largest
    cluster is below ``max_cluster_size`` (ties: the later epoch); if none
    qualifies, the last finished epoch is kept and ``selection`` says so. A
    non-finite loss ends training at the last finished epoch.

    ``seed`` drives a local generator and the flow's initialisation (inside
    ``seeded_torch``: torch's global random state is left unchanged). ``cfg`` is
    validated first (ValueError naming a bad setting).
    """
    cfg.validate()
    with deterministic(cfg.device), seeded_torch(seed):
        return _fit_stage(X, y, cfg, seed)


def _fit_stage(X: torch.Tensor, y: torch.Tensor, cfg: DLSAConfig, seed: int) -> StageFit:
    device = torch.device(cfg.device)
    gen = torch.Generator().manual_seed(seed)
    K = cfg.num_clusters
    model = GMF(
        X.shape[1], K, cfg.hidden, cfg.prior_std, cfg.bn_momentum, seed, cfg.made_init_std
    ).to(device)
    opt = make_optimizer(model, cfg)
    sampler = PairSampler(y, gen)
    w = class_weights(sampler.counts, cfg.q).to(device)
    Xd = X.to(device)
    y_np = y.numpy()
    ema, t = torch.zeros(K, device=device), 0
    amp = training_dtype(cfg)
    best: tuple[int, int, dict] | None = None
    last_good: dict | None = None
    fit = StageFit(model, cfg.flow_epochs, 0, "best-kept-clusters")
    fit.kept_clusters_initial = cluster_stats(score(model, Xd)[1].numpy(), y_np, K, cfg)[0]
    for epoch in range(1, cfg.flow_epochs + 1):
        model.train()
        finite = True
        sums, steps = torch.zeros(3, dtype=torch.float64, device=device), 0
        for s in range(0, len(y), cfg.flow_batch_size):
            n = min(cfg.flow_batch_size, len(y) - s)
            if n < 2:
                break
            rows, ca, other = sampler.batch(n)
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                comp = model(Xd[rows.to(device)]).float()
            comp_a, comp_o = comp[:n], comp[other.to(device)]
            l_lh = -(w[ca.to(device)] * GMF.log_px(comp_a)).mean()
            q_a = comp_a.softmax(1)
            t += 1
            ema = cfg.ema_momentum * ema.detach() + (1 - cfg.ema_momentum) * q_a.mean(0)
            p_bar = ema / (1 - cfg.ema_momentum**t)
            l_bal = math.log(K) + (p_bar * torch.log(p_bar.clamp_min(1e-12))).sum()
            l_pur = (q_a.detach() * comp_o.log_softmax(1)).sum(1).mean()
            loss = cfg.lambda_lh * l_lh + cfg.lambda_bal * l_bal + cfg.lambda_pur * l_pur
            if not torch.isfinite(loss):
                finite = False
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.flow_grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.flow_grad_clip)
            opt.step()
            sums += torch.stack([l_lh, l_bal, l_pur]).detach().double()  # no sync per step
            steps += 1
        if not finite:
            fit.selection += f"; stopped at epoch {epoch}: non-finite loss"
            if last_good is not None:
                model.load_state_dict(last_good)
            break
        _, clusters = score(model, Xd, recalibrate=cfg.bn_recalibrate)
        kept, largest = cluster_stats(clusters.numpy(), y_np, K, cfg)
        means = (sums / max(steps, 1)).tolist()
        fit.history.append(
            {
                "epoch": epoch,
                "loss": float(loss.detach()),
                "l_lh": means[0],
                "l_bal": means[1],
                "l_pur": means[2],
                "kept": kept,
                "largest": largest,
            }
        )
        last_good = copy.deepcopy(model.state_dict())
        if largest < cfg.max_cluster_size and (best is None or kept >= best[1]):
            best = (epoch, kept, last_good)
    if best is None:
        note = fit.selection.partition("; ")[2]  # keep a divergence note
        fit.selection = "last finished epoch (none had its largest cluster below the limit)"
        fit.selection += f"; {note}" if note else ""
        fit.epoch = len(fit.history)
        fit.kept_clusters = fit.history[-1]["kept"] if fit.history else 0
    else:
        fit.epoch, fit.kept_clusters, state = best
        model.load_state_dict(state)
    model.eval()
    return fit
