"""Training one stage's GMF ensemble: pair sampler, the three losses, epoch selection.

The R flows of a stage train as one batched model (``lteval.dlsa.flow``), but each
member is trained exactly as a lone flow of its seed would be: its own pair
sampler, its own losses, its own gradient clip, its own epoch choice and early
stop; nothing but the batched matmuls is shared.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import torch

from lteval.dlsa.config import CHOICES, DLSAConfig
from lteval.dlsa.density import cluster_stats, recalibrate_bn, score
from lteval.dlsa.flow import GMF
from lteval.fields import not_a_choice
from lteval.seeds import seeded_torch, torch_generator


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
    """One stage's trained ensemble of R flows (``model``, a GMF with R members) and
    how each member's epoch was chosen; every list has one entry per member."""

    model: GMF
    epoch: list[int]
    kept_clusters: list[int]
    selection: list[str]
    history: list[list[dict]] = field(default_factory=list)
    # each untrained flow's count: initial weights, batch-norm bijectors at their
    # initial identity statistics (inputs are z-scored), before any step
    kept_clusters_initial: list[int] = field(default_factory=list)
    # members left out of the ensemble because not one epoch finished with a finite loss
    dropped: list[int] = field(default_factory=list)
    # epochs trained (fewer than flow_epochs when every member stopped early)
    epochs_run: int = 0

    @property
    def members(self) -> int:
        return len(self.epoch)

    @property
    def usable(self) -> bool:
        """False when no member finished one epoch with a finite loss (every flow diverged)."""
        return self.members > 0


def class_weights(counts: torch.Tensor, q: float) -> torch.Tensor:
    """``w_c = (n_max / n_c) ** q`` normalised to sum to 1 over the classes."""
    w = (counts.max() / counts.float()) ** q
    return w / w.sum()


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
    fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True)
    # deterministic mode also fills every new tensor with NaN (a debugging aid that
    # changes no result): measured at a third of a flow step's time, so it is off
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
        torch.utils.deterministic.fill_uninitialized_memory = fill


def make_optimizer(model: GMF, cfg: DLSAConfig) -> torch.optim.Optimizer:
    """The GMF optimizer: plain SGD (the method page's) or Adam, at ``flow_lr``
    ("adam-per-tensor": Adam's per-tensor loop, for ``make benchmark-stability``).

    Adam uses torch's fused kernel (one pass over all parameters; about 5 ms per
    step against 40 ms for the per-tensor loop at D = 1280 on 2 CPU cores).
    """
    if cfg.flow_optimizer == "adam":
        fused = torch.device(cfg.device).type in ("cpu", "cuda")
        return torch.optim.Adam(model.parameters(), lr=cfg.flow_lr, fused=fused or None)
    if cfg.flow_optimizer == "adam-per-tensor":  # the same algorithm, other rounding
        return torch.optim.Adam(model.parameters(), lr=cfg.flow_lr, foreach=False, fused=False)
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


def clip_per_member(params: list[torch.Tensor], max_norm: float, members: int) -> None:
    """``clip_grad_norm_`` applied to each member separately: member r's gradients
    (slice r of every parameter) are scaled by ``min(1, max_norm / (norm_r + 1e-6))``."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    norms = torch.stack([torch.linalg.vector_norm(g.reshape(members, -1), dim=1) for g in grads])
    coef = (max_norm / (torch.linalg.vector_norm(norms, dim=0) + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(members, *([1] * (g.dim() - 1))))


def _member_keys(state: dict) -> list[str]:
    """The state-dict entries with a leading member axis (every one but the masks)."""
    return [k for k in state if not k.endswith(".mask")]


def _copy_member(dst: dict, src: dict, r: int) -> None:
    for k in _member_keys(src):
        dst[k][r].copy_(src[k][r])


def fit_stage(
    X: torch.Tensor,
    y: torch.Tensor,
    cfg: DLSAConfig,
    seed: int,
    on_epoch: Callable[[int], None] | None = None,
) -> StageFit:
    """Train ``cfg.flow_seeds`` GMFs on the active train rows (X (N, D) standardised,
    y (N,)), as one batched model; member r is seeded with ``member_seeds(seed, R)[r]``.

    Per member: loss = l_lh * L_lh + l_bal * L_bal + l_pur * L_pur (see the method
    page). The epoch kept has the most "kept" clusters among epochs whose largest
    cluster is below ``max_cluster_size`` (ties: the later epoch); if none
    qualifies, the last finished epoch is kept and its ``selection`` says so. A
    non-finite loss ends the member's training at its last finished epoch; with
    ``flow_patience`` a member stops once that many epochs pass without a strictly
    larger kept count, and training ends when every member has stopped. With more
    active rows than ``flow_epoch_samples``, an epoch is that many pairs and its
    criterion is read on a fixed seeded subset of that many rows (``_Check``). Members that finished
    no epoch are dropped from the ensemble (``StageFit.dropped``).

    ``seed`` drives local generators and the flows' initialisation (torch's global
    random state is left unchanged). ``on_epoch(epochs_done)`` is called after each
    epoch. ``cfg`` is validated first (ValueError naming a bad setting).
    """
    cfg.validate()
    with deterministic(cfg.device), seeded_torch(seed, "global"):
        return _fit_stage(X, y, cfg, seed, on_epoch)


class _Batches:
    """Each member's own pair batches, padded to one (R, B) row tensor."""

    def __init__(self, y: torch.Tensor, seeds: list[int]):
        self.samplers = [PairSampler(y, torch_generator(s, "pairs")) for s in seeds]
        self.counts = self.samplers[0].counts

    def next(self, n: int):
        """(rows (R, B), weight (R, B) 1 = a real row, anchor classes (R, n), others (R, n))."""
        parts = [sm.batch(n) for sm in self.samplers]
        width = max(len(rows) for rows, _, _ in parts)
        rows = torch.zeros(len(parts), width, dtype=torch.long)
        weight = torch.zeros(len(parts), width)
        for r, (rw, _, _) in enumerate(parts):
            rows[r, : len(rw)], weight[r, : len(rw)] = rw, 1.0
        ca = torch.stack([a for _, a, _ in parts])
        other = torch.stack([o for _, _, o in parts])
        return rows, weight, ca, other


class _Check:
    """The rows an epoch's criterion is read on: every active row, or above
    ``flow_epoch_samples`` a fixed seeded subset of that many, with the cluster-size
    limits scaled by its share (a cluster of s rows holds about share * s of them)."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor, cfg: DLSAConfig, seed: int):
        n = len(y) if cfg.flow_epoch_samples is None else min(len(y), cfg.flow_epoch_samples)
        self.cfg, self.X, self.y = cfg, X, y.numpy()
        if n < len(y):
            gen = torch_generator(seed, "criterion-rows")
            idx = torch.randperm(len(y), generator=gen)[:n].sort().values
            self.X, self.y = X[idx.to(X.device)], self.y[idx.numpy()]
            share = n / len(y)
            self.cfg = replace(
                cfg,
                min_cluster_size=cfg.min_cluster_size * share,
                max_cluster_size=cfg.max_cluster_size * share,
            )
        self.subset = n < len(y)
        self.epoch_pairs = n


def _fit_stage(X, y, cfg: DLSAConfig, seed: int, on_epoch) -> StageFit:
    device = torch.device(cfg.device)
    K, R = cfg.num_clusters, cfg.flow_seeds
    model = GMF(
        X.shape[1], K, cfg.hidden, cfg.prior_std, cfg.bn_momentum, seed, cfg.made_init_std, R
    ).to(device)
    opt = make_optimizer(model, cfg)
    params = list(model.parameters())
    batches = _Batches(y, model.seeds)
    w = class_weights(batches.counts, cfg.q).to(device)
    Xd = X.to(device)
    check = _Check(Xd, y, cfg, seed)
    Xc, y_np, crit = check.X, check.y, check.cfg
    ema, t = torch.zeros(R, K, device=device), 0
    amp = training_dtype(cfg)
    live = torch.ones(R, dtype=torch.bool, device=device)  # no non-finite loss yet
    running = [True] * R  # still a candidate for new epochs (not diverged, not stopped)
    since_best = [0] * R
    history: list[list[dict]] = [[] for _ in range(R)]
    best: list[tuple[int, int] | None] = [None] * R
    state = model.state_dict()
    best_state = {k: v.clone() for k, v in state.items()}
    last_state = {k: v.clone() for k, v in state.items()}
    notes = [""] * R
    _, clusters0 = score(model, Xc)
    initial = [cluster_stats(c.numpy(), y_np, K, crit)[0] for c in clusters0]
    for epoch in range(1, cfg.flow_epochs + 1):
        model.train()
        sums, steps = torch.zeros(R, 3, dtype=torch.float64, device=device), 0
        for s in range(0, check.epoch_pairs, cfg.flow_batch_size):
            n = min(cfg.flow_batch_size, check.epoch_pairs - s)
            if n < 2:
                break
            rows, wt, ca, other = (a.to(device) for a in batches.next(n))
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                comp = model(Xd[rows], wt).float()  # (R, B, K)
            comp_a = comp[:, :n]
            comp_o = torch.gather(comp, 1, other.unsqueeze(2).expand(-1, -1, K))
            l_lh = -(w[ca] * GMF.log_px(comp_a)).mean(1)
            q_a = comp_a.softmax(2)
            t += 1
            ema = cfg.ema_momentum * ema.detach() + (1 - cfg.ema_momentum) * q_a.mean(1)
            p_bar = ema / (1 - cfg.ema_momentum**t)
            l_bal = math.log(K) + (p_bar * torch.log(p_bar.clamp_min(1e-12))).sum(1)
            l_pur = (q_a.detach() * comp_o.log_softmax(2)).sum(2).mean(1)
            loss = cfg.lambda_lh * l_lh + cfg.lambda_bal * l_bal + cfg.lambda_pur * l_pur
            finite = torch.isfinite(loss)
            if not bool(finite[live].all()):
                for r in torch.nonzero(live & ~finite).flatten().tolist():
                    notes[r] = f"; stopped at epoch {epoch}: non-finite loss"
                    running[r] = False
                live &= finite
                if not bool(live.any()):
                    break
            opt.zero_grad(set_to_none=True)
            torch.where(live, loss, torch.zeros_like(loss)).sum().backward()
            if not bool(live.all()):  # diverged members take no step from their NaN gradients
                keep = live.float()
                for p in params:
                    if p.grad is not None:
                        p.grad.copy_(torch.nan_to_num(p.grad) * keep.view(R, *[1] * (p.dim() - 1)))
            if cfg.flow_grad_clip:
                clip_per_member(params, cfg.flow_grad_clip, R)
            opt.step()
            sums += torch.stack([l_lh, l_bal, l_pur], 1).detach().double()  # no sync per step
            steps += 1
        finished = [r for r in range(R) if running[r]]
        if finished:
            lp, clusters = score(model, Xc, recalibrate=cfg.bn_recalibrate)
            for r in [r for r in finished if not bool(torch.isfinite(lp[r]).all())]:
                # the epoch's last step left weights that score non-finitely
                notes[r] = f"; stopped at epoch {epoch}: non-finite log-density"
                running[r], live[r] = False, False
                finished.remove(r)
            state = model.state_dict()
            means = (sums / max(steps, 1)).tolist()
            for r in finished:
                kept, largest = cluster_stats(clusters[r].numpy(), y_np, K, crit)
                history[r].append(
                    {
                        "epoch": epoch,
                        "loss": float(loss[r].detach()),
                        "l_lh": means[r][0],
                        "l_bal": means[r][1],
                        "l_pur": means[r][2],
                        "kept": kept,
                        "largest": largest,
                    }
                )
                _copy_member(last_state, state, r)
                since_best[r] += 1
                if largest < crit.max_cluster_size and (best[r] is None or kept >= best[r][1]):
                    if best[r] is None or kept > best[r][1]:  # a tie is kept, not progress
                        since_best[r] = 0
                    best[r] = (epoch, kept)
                    _copy_member(best_state, state, r)
                if cfg.flow_patience is not None and since_best[r] >= cfg.flow_patience:
                    running[r] = False
                    notes[r] += f"; stopped early at epoch {epoch} (patience {cfg.flow_patience})"
        if on_epoch:
            on_epoch(epoch)
        if not any(running):
            break
    fit = _finish(model, history, best, best_state, last_state, initial, notes)
    if check.subset and cfg.bn_recalibrate and fit.usable:
        recalibrate_bn(fit.model, Xd)  # the chosen epoch's statistics over every active row
    fit.epochs_run = epoch
    return fit


def _finish(model, history, best, best_state, last_state, initial, notes) -> StageFit:
    """Load each member's chosen epoch, drop the members that finished no epoch."""
    R = model.members
    final = {k: v.clone() for k, v in last_state.items()}
    fit = StageFit(model, [], [], [], [], [])
    for r in range(R):
        if best[r] is not None:
            _copy_member(final, best_state, r)
            epoch, kept, sel = best[r][0], best[r][1], "best-kept-clusters"
        else:
            epoch = len(history[r])
            kept = history[r][-1]["kept"] if history[r] else 0
            sel = "last finished epoch (none had its largest cluster below the limit)"
        fit.epoch.append(epoch)
        fit.kept_clusters.append(kept)
        fit.selection.append(sel + notes[r])
        fit.history.append(history[r])
        fit.kept_clusters_initial.append(initial[r])
    model.load_state_dict(final)
    fit.dropped = [r for r in range(R) if not history[r]]
    if fit.dropped:
        keep = [r for r in range(R) if history[r]]
        fit.model = model.subset(keep)
        for name in ("epoch", "kept_clusters", "selection", "history", "kept_clusters_initial"):
            setattr(fit, name, [getattr(fit, name)[r] for r in keep])
    fit.model.eval()
    return fit
