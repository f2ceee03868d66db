"""Long-tailed split construction: exponential profile, balanced eval, validation.

All functions are pure and seeded; the same ``seed`` always gives the same split.
The same code serves the embedded datasets and, later, CIFAR-10/100-LT.
"""

from __future__ import annotations

import hashlib
import json
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lteval.errors import DatasetError, arg
from lteval.seeds import derived_rng


def long_tailed_counts(n_max: int, imbalance_factor: float, num_classes: int) -> np.ndarray:
    """Per-rank class sizes of the exponential profile.

    ``n_c = floor(n_max * IF ** (-c / (C - 1)))`` for rank ``c = 0 .. C-1``, at
    least 1. Returns an int64 array of shape (C,), largest first.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if n_max < 1:
        raise ValueError(f"n_max must be >= 1, got {n_max}")
    if imbalance_factor < 1:
        raise ValueError(f"imbalance_factor must be >= 1, got {imbalance_factor}")
    if num_classes == 1:
        return np.array([n_max], dtype=np.int64)
    ranks = np.arange(num_classes)
    counts = np.floor(n_max * imbalance_factor ** (-ranks / (num_classes - 1)) + 1e-9)
    return np.maximum(counts.astype(np.int64), 1)


@dataclass(frozen=True)
class Splits:
    """Index arrays (into the dataset) of the train, validation and eval splits.

    ``class_order[r]`` is the class that got rank ``r`` of the profile (rank 0 is
    the largest). ``config`` records every parameter that produced the split.
    """

    train: np.ndarray
    val: np.ndarray
    eval: np.ndarray
    class_order: np.ndarray
    config: dict = field(default_factory=dict)

    def manifest(self) -> dict:
        """JSON-serialisable description: config, sizes and the index lists."""
        return {
            "config": self.config,
            "class_order": self.class_order.tolist(),
            "sizes": {"train": len(self.train), "val": len(self.val), "eval": len(self.eval)},
            "indices": {
                "train": self.train.tolist(),
                "val": self.val.tolist(),
                "eval": self.eval.tolist(),
            },
        }

    @property
    def hash(self) -> str:
        """sha256 (first 16 hex digits) of the manifest: part of every cache key."""
        blob = json.dumps(self.manifest(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def per_class_holdout(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask (N,) of a seeded, per-class share ``fraction`` of ``labels`` held
    out: lteval's one hold-out rule (validation carved from train, a head's own
    validation, DLSA's stage-check share). Each class, in sorted order, is permuted
    by ``rng`` and gives its first ``round(fraction * n_c)`` samples, but always keeps
    at least one (a class with a single sample gives none). ``fraction`` in [0, 1)."""
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real):
        raise ValueError(f"the held-out fraction must be a number, got {fraction!r}")
    if not 0 <= fraction < 1:
        raise ValueError(f"the held-out fraction must be in [0, 1), got {fraction}")
    out = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        out[idx[: min(int(round(fraction * len(idx))), len(idx) - 1)]] = True
    return out


def carve_validation(
    indices: np.ndarray, labels: np.ndarray, val_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of ``indices`` into (train, val), sorted, by
    ``per_class_holdout`` of their labels."""
    held = per_class_holdout(labels[indices], val_fraction, rng)
    return np.sort(indices[~held]), np.sort(indices[held])


def take_profile(
    pools: dict, class_order: np.ndarray, imbalance_factor: float | None, n_max: int | None
) -> tuple[np.ndarray, int | None]:
    """The first ``n_c`` of each class's (already shuffled) pool, ``n_c`` from the profile.

    pools: class -> index array. class_order[r] gets rank r (rank 0 = head).
    ``imbalance_factor=None`` keeps every pool whole. ``n_max`` defaults to the
    smallest pool. Returns (indices, class by class; the n_max used).
    """
    classes = sorted(pools)
    if imbalance_factor is None:
        counts = {c: len(pools[c]) for c in classes}
    else:
        smallest = min(len(p) for p in pools.values())
        n_max = smallest if n_max is None else n_max
        if n_max > smallest:
            raise ValueError(
                f"n_max={n_max} exceeds the {smallest} samples available in the smallest class"
            )
        profile = long_tailed_counts(n_max, imbalance_factor, len(classes))
        counts = {c: int(profile[r]) for r, c in enumerate(class_order)}
    return np.concatenate([pools[c][: counts[c]] for c in classes]), n_max


def long_tailed_train_split(
    labels: np.ndarray,
    train_pool: np.ndarray,
    eval_idx: np.ndarray,
    *,
    imbalance_factor: float | None,
    n_max: int | None,
    val_fraction: float,
    seed: int,
    class_order: str = "natural",
) -> Splits:
    """Splits for a benchmark with its own (balanced) eval set, e.g. CIFAR-LT.

    ``train_pool`` is subsampled to the exponential profile (samples within a class
    chosen by ``seed``); ``class_order`` "natural" makes class 0 the head (the
    standard CIFAR-LT protocol), "seeded" draws the order from ``seed``.
    """
    rng = derived_rng(seed)  # the dataset draw: the root stream of seed
    classes = np.unique(labels[train_pool])
    order = classes if class_order == "natural" else classes[rng.permutation(len(classes))]
    pools = {c: rng.permutation(train_pool[labels[train_pool] == c]) for c in classes}
    lt, n_max = take_profile(pools, order, imbalance_factor, n_max)
    train, val = carve_validation(lt, labels, val_fraction, rng)
    config = {
        "imbalance_factor": imbalance_factor,
        "n_max": n_max,
        "val_fraction": val_fraction,
        "class_order": class_order,
        "seed": seed,
    }
    return Splits(train, val, np.sort(np.asarray(eval_idx)), order, config)


def make_long_tailed_splits(
    labels: np.ndarray,
    *,
    imbalance_factor: float | None,
    eval_per_class: int,
    val_fraction: float = 0.2,
    n_max: int | None = None,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
) -> Splits:
    """Balanced eval split, long-tailed train split, validation carved from train.

    labels: (N,) int array of the whole labelled pool.
    imbalance_factor: IF of the exponential profile; ``None`` keeps the natural
        class sizes of what remains after the eval hold-out.
    eval_per_class: samples per class held out for the balanced eval split.
    n_max: size of the largest class; default the smallest class's remainder, so
        every class can reach its profile count.
    The class order (which class is the head) is drawn from ``seed``.
    ``class_names[c]`` names class c in errors (default: its id).
    """
    labels = np.asarray(labels)
    classes, sizes = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise ValueError("a long-tailed split needs at least 2 classes")
    if eval_per_class < 1:
        raise ValueError(f"eval_per_class must be >= 1, got {eval_per_class}")
    small = np.flatnonzero(sizes <= eval_per_class)
    if len(small):
        shown = ", ".join(
            f"{class_names[classes[i]] if class_names else classes[i]} ({sizes[i]})"
            for i in small[np.argsort(sizes[small], kind="stable")][:5]
        )
        raise DatasetError(
            f"{arg('eval_per_class', eval_per_class)} leaves no training data for {len(small)} "
            f"class(es), by their sample counts: {shown}{' ...' if len(small) > 5 else ''}; "
            f"lower {arg('eval_per_class')}, or give those classes more images"
        )
    rng = derived_rng(seed)  # the dataset draw: the root stream of seed
    class_order = classes[rng.permutation(len(classes))]
    pools, evals = {}, []
    for c in classes:
        idx = rng.permutation(np.flatnonzero(labels == c))
        evals.append(idx[:eval_per_class])
        pools[c] = idx[eval_per_class:]
    train_pool, n_max = take_profile(pools, class_order, imbalance_factor, n_max)
    train, val = carve_validation(train_pool, labels, val_fraction, rng)
    config = {
        "imbalance_factor": imbalance_factor,
        "eval_per_class": eval_per_class,
        "val_fraction": val_fraction,
        "n_max": n_max,
        "seed": seed,
    }
    return Splits(train, val, np.sort(np.concatenate(evals)), class_order, config)
