"""Linear heads trained with Balanced Softmax; the epoch is chosen on validation.

Balanced Softmax (Ren et al., 2020) adds ``log n_c`` (the training class counts)
to the logits inside the cross-entropy only; prediction uses the plain logits.
Classes with no training sample are never predicted (their logit is masked).

Optimiser: Adam (batch 128), at most 150 epochs (an epoch: every row, or 16,384
rows on larger sets), stopped 20 epochs after the last gain in validation
balanced accuracy; the best validation epoch is kept, and the
learning rate is chosen on validation from (1e-2, 1e-3).
Measured on CIFAR-100-LT-shaped features (``make benchmark-linear``,
reports/benchmarks/linear.json): the reference's plain SGD at lr 1e-2 was still
improving at epoch 148 of 150 (val 0.593, test 0.600 balanced), momentum SGD
reached 0.612 / 0.618, full-batch L-BFGS 0.628 / 0.624, Adam lr 1e-3 0.656 / 0.658
and Adam lr 1e-2 0.687 / 0.678 (best epoch 2: it converges in a few epochs, and
validation picks the epoch before it overfits).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lteval.fields import AT_LEAST_1, NON_NEGATIVE, POSITIVE, check_fields, not_a_choice
from lteval.heads.metrics import balanced_accuracy, balanced_accuracy_se
from lteval.heads.params import ParamsMixin
from lteval.seeds import seeded_torch, torch_generator


@dataclass
class Standardizer:
    """Per-dimension z-scoring fitted on training features.

    A dimension whose train spread is below 1% of the mean spread (dead ReLU units,
    constant channels) is scaled by that floor instead, so that eval values in it
    cannot blow up.
    """

    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    std: np.ndarray = field(default_factory=lambda: np.ones(0))

    def fit(self, X: np.ndarray) -> Standardizer:
        self.mean = X.mean(0)
        std = X.std(0)
        self.std = np.maximum(std, 0.01 * std.mean() + 1e-8)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean) / self.std).astype(np.float32)


class LinearHead(nn.Module):
    """``Linear(x)``, or with ``prior_dim`` the cluster-aided ``Linear(x) + Linear([x; P])``."""

    def __init__(self, dim: int, num_classes: int, prior_dim: int = 0):
        super().__init__()
        self.fc = nn.Linear(dim, num_classes)
        self.aux = nn.Linear(dim + prior_dim, num_classes) if prior_dim else None

    def forward(self, x: torch.Tensor, p: torch.Tensor | None = None) -> torch.Tensor:
        out = self.fc(x)
        if self.aux is not None:
            out = out + self.aux(torch.cat([x, p], dim=1))
        return out


@dataclass
class LinearConfig(ParamsMixin):
    """The settings of a linear head (see the module docstring); ``get_params`` /
    ``set_params`` let scikit-learn reach each one (``classifier__lr`` of DLSA)."""

    epochs: int = 150
    batch_size: int = 128
    lr: float = 1e-2
    weight_decay: float = 0.0
    optimizer: str = "adam"
    patience: int | None = 20
    lr_grid: tuple[float, ...] | None = (1e-2, 1e-3)  # tried in turn when validating
    sampling: str = "instance"  # or "class-balanced" (each class equally likely)
    # An "epoch" (one validation check, one unit of ``patience``) is at most this many
    # training rows, taken in turn from one permutation after another; None = every
    # row. Sets up to this size are untouched; on ImageNet-LT's 104k rows a check
    # every 16k rows stops about 6 times sooner after the best epoch (docs/method.md).
    epoch_samples: int | None = 16384
    # With ``init`` (a warm start), a trained epoch replaces the starting point only
    # if its validation balanced accuracy beats it by this many standard errors
    # (the one-standard-error rule; 0 = any gain). See ``_train_one``.
    warm_start_margin_se: float = 1.0

    def validate(self) -> LinearConfig:
        """Self, after checking every setting's type and choice (ValueError naming it)."""
        check_fields(self, CHOICES, RANGES)
        return self


CHOICES = {
    "optimizer": ("adam", "sgd", "sgd-momentum", "lbfgs"),
    "sampling": ("instance", "class-balanced"),
}
"""The string settings of ``LinearConfig`` and their values."""

RANGES = {
    "epochs": AT_LEAST_1,
    "batch_size": AT_LEAST_1,
    "lr": POSITIVE,
    "weight_decay": NON_NEGATIVE,
    "patience": AT_LEAST_1,
    "lr_grid": POSITIVE,
    "epoch_samples": AT_LEAST_1,
}
"""The numeric settings of ``LinearConfig`` and their ranges (None: where the
annotation allows it, "off")."""


@dataclass
class TrainedHead:
    """A trained head plus what was chosen on validation."""

    module: LinearHead
    class_counts: np.ndarray
    best_epoch: int
    val_balanced: float
    history: list[float]
    lr: float = float("nan")

    @torch.no_grad()
    def logits(self, X: np.ndarray, P: np.ndarray | None = None) -> np.ndarray:
        x = torch.as_tensor(X, dtype=torch.float32)
        p = None if P is None else torch.as_tensor(P, dtype=torch.float32)
        out = self.module(x, p)
        out[:, torch.as_tensor(self.class_counts == 0)] = -torch.inf
        return out.numpy()

    def predict(self, X: np.ndarray, P: np.ndarray | None = None) -> np.ndarray:
        if len(X) == 0:
            return np.zeros(0, dtype=np.int64)
        return self.logits(X, P).argmax(1)


def _optimizer(head: nn.Module, cfg: LinearConfig) -> torch.optim.Optimizer:
    params, wd = head.parameters(), cfg.weight_decay
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=wd)
    if cfg.optimizer == "sgd":  # the reference: plain SGD, no momentum
        return torch.optim.SGD(params, lr=cfg.lr, weight_decay=wd)
    if cfg.optimizer == "sgd-momentum":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=wd)
    if cfg.optimizer == "lbfgs":
        return torch.optim.LBFGS(
            params, lr=cfg.lr, max_iter=1, history_size=20, line_search_fn="strong_wolfe"
        )
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}: adam, sgd, sgd-momentum or lbfgs")


def train_balanced_softmax(
    X: np.ndarray, y: np.ndarray, num_classes: int, *, config: LinearConfig | None = None, **kw
) -> TrainedHead:
    """Train a (cluster-aided when ``P`` is given) linear head with Balanced Softmax.

    X: (N, D) float features; y: (N,) int labels; P: (N, C') cluster prior or None.
    With validation data and ``config.lr_grid``, one head is trained per learning
    rate and the best by validation balanced accuracy is returned (ties: the first
    in the grid); within each, the epoch is chosen on validation too. See
    ``_train_one`` for the other arguments (``seed`` drives a local generator and the
    initialisation; torch's global random state is left unchanged). ``config`` is
    validated first (ValueError naming a bad setting).
    """
    cfg = (config or LinearConfig()).validate()
    has_val = kw.get("y_val") is not None and len(kw["y_val"]) > 0
    if not has_val or not cfg.lr_grid or cfg.optimizer == "lbfgs":
        return _train_one(X, y, num_classes, config=cfg, **kw)
    heads = [_train_one(X, y, num_classes, config=replace(cfg, lr=lr), **kw) for lr in cfg.lr_grid]
    return heads[int(np.argmax([h.val_balanced for h in heads]))]


def _train_one(
    X: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    *,
    P: np.ndarray | None = None,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    P_val: np.ndarray | None = None,
    class_counts: np.ndarray | None = None,
    config: LinearConfig | None = None,
    seed: int = 0,
    init: LinearHead | None = None,
    mask_counts: np.ndarray | None = None,
) -> TrainedHead:
    """Train a (cluster-aided when ``P`` is given) linear head with Balanced Softmax.

    X: (N, D) float features; y: (N,) int labels; P: (N, C') cluster prior or None.
    class_counts: the ``n_c`` of the loss (default: counts of ``y``).
    The epoch kept is the best by validation balanced accuracy (ties: earliest);
    without validation samples, the last epoch is kept.
    init: a trained head to start from (its ``fc`` copied, the cluster-aided part
    zero); its state is then the epoch-0 candidate, and a trained epoch must beat it
    by ``config.warm_start_margin_se`` standard errors of the validation balanced
    accuracy (``balanced_accuracy_se`` of the starting point, per class): on small
    validation subsets, a gain below that is noise, and chasing it cost test
    accuracy (see lteval.dlsa.model). mask_counts: the counts whose
    zeros mark never-predicted classes (default: ``class_counts``).
    """
    cfg = config or LinearConfig()
    counts = np.bincount(y, minlength=num_classes) if class_counts is None else class_counts
    gen = torch_generator(seed, "batches")
    with seeded_torch(seed, "init"):  # nn.Linear's init draws from the global generator
        head = LinearHead(X.shape[1], num_classes, 0 if P is None else P.shape[1])
    if init is not None:
        head.fc.load_state_dict(init.fc.state_dict())
        if head.aux is not None:
            torch.nn.init.zeros_(head.aux.weight)
            torch.nn.init.zeros_(head.aux.bias)
    log_n = torch.log(torch.as_tensor(counts, dtype=torch.float32).clamp_min(1e-30))
    log_n = log_n.masked_fill(torch.as_tensor(counts == 0), -1e4)
    Xt, yt = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
    Pt = None if P is None else torch.as_tensor(P, dtype=torch.float32)
    opt = _optimizer(head, cfg)
    has_val = X_val is not None and y_val is not None and len(y_val) > 0
    mask = np.asarray(counts if mask_counts is None else mask_counts)
    trained = TrainedHead(head, mask, cfg.epochs, float("nan"), [], cfg.lr)
    best_state, best, bar = None, -1.0, -1.0
    rows = _Rows(yt, num_classes, cfg, gen)
    if init is not None and has_val:  # the starting point competes as epoch 0
        head.eval()
        start = trained.predict(X_val, P_val)
        best = balanced_accuracy(y_val, start)
        best_state = {k: v.clone() for k, v in head.state_dict().items()}
        trained.best_epoch, trained.val_balanced = 0, best
        bar = best + cfg.warm_start_margin_se * balanced_accuracy_se(y_val, start)
    for epoch in range(1, cfg.epochs + 1):
        head.train()
        if cfg.optimizer == "lbfgs":  # one full-batch quasi-Newton iteration per "epoch"

            def closure():
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(head(Xt, Pt) + log_n, yt)
                if cfg.weight_decay:
                    loss = loss + 0.5 * cfg.weight_decay * sum(
                        (p**2).sum() for p in head.parameters()
                    )
                loss.backward()
                return loss

            opt.step(closure)
        else:
            order = rows.next()
            for s in range(0, len(order), cfg.batch_size):
                b = order[s : s + cfg.batch_size]
                logits = head(Xt[b], None if Pt is None else Pt[b]) + log_n
                loss = F.cross_entropy(logits, yt[b])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        if has_val:
            head.eval()
            score = balanced_accuracy(y_val, trained.predict(X_val, P_val))
            trained.history.append(score)
            if score > best and score > bar:
                best, best_state = score, {k: v.clone() for k, v in head.state_dict().items()}
                trained.best_epoch, trained.val_balanced = epoch, score
            elif cfg.patience is not None and epoch - trained.best_epoch >= cfg.patience:
                break  # no validation gain for `patience` epochs: early stop
    if best_state is not None:
        head.load_state_dict(best_state)
    head.eval()
    return trained


class _Rows:
    """Each epoch's rows: the next ``epoch_samples`` of a stream of epoch orders (a
    new ``_epoch_order`` drawn whenever one runs out), or one whole order per epoch."""

    def __init__(self, y: torch.Tensor, num_classes: int, cfg: LinearConfig, gen):
        self.args, self.size = (y, num_classes, cfg.sampling, gen), cfg.epoch_samples
        self.left = torch.zeros(0, dtype=torch.long)

    def next(self) -> torch.Tensor:
        n = len(self.args[0]) if self.size is None else min(self.size, len(self.args[0]))
        parts, need = [], n
        while need > 0:
            if len(self.left) == 0:
                self.left = _epoch_order(*self.args)
            parts.append(self.left[:need])
            self.left, need = self.left[need:], need - len(parts[-1])
        return parts[0] if len(parts) == 1 else torch.cat(parts)


def _epoch_order(y: torch.Tensor, num_classes: int, sampling: str, gen: torch.Generator):
    """Row order (N,) of one epoch over labels ``y`` (N,): a permutation ("instance")
    or N class-balanced draws with replacement ("class-balanced")."""
    if sampling == "class-balanced":
        present = torch.bincount(y, minlength=num_classes).double()  # not the loss's n_c
        return torch.multinomial(1.0 / present[y], len(y), replacement=True, generator=gen)
    if sampling == "instance":
        return torch.randperm(len(y), generator=gen)
    raise ValueError(not_a_choice("sampling", sampling, CHOICES["sampling"]))
