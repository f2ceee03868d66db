"""Features in DLSA's own setting: a small CNN trained with cross-entropy on the
long-tailed train split, then frozen (decoupled stage 1, as in the paper).

``features(dataset, imbalance_factor, seed)`` returns ``{"train", "val", "eval"}``
-> ``(X (N, 256) float32, y (N,) int64)`` and a description of the run. The CNN
sees only the train split: validation (carved from the long-tailed train data)
and eval (balanced) are images it never trained on. Results are cached as ``.npz``
(written atomically) under ``cache_dir``, keyed by every setting below.

CNN: three conv blocks (3x3 conv, batch norm, ReLU, 2x2 max-pool; 32, 64, 128
channels), global average pooling, a 256-d ReLU layer (the features), a linear
classifier. SGD (momentum 0.9, weight decay 5e-4, lr 0.05, cosine), batch 128,
15 epochs, random 2-pixel shifts; seeded and run with deterministic algorithms.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lteval.data import load_dataset

# dataset -> split options (animal-mnist: a larger n_max than the registry's 200
# so that the CNN has images to learn from; eval 100 per class of its 1,000)
SPLITS = {
    "fashion-mnist-lt": {"n_max": 2000, "eval_per_class": 300},
    "animal-mnist-lt": {"n_max": 900, "eval_per_class": 100},
}
CNN = {"epochs": 15, "batch": 128, "lr": 0.05, "momentum": 0.9, "wd": 5e-4, "width": 256}


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int, width: int = 256):
        super().__init__()
        blocks, c_in = [], 1
        for c in (32, 64, 128):
            blocks += [
                nn.Conv2d(c_in, c, 3, padding=1),
                nn.BatchNorm2d(c),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            c_in = c
        self.body = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.embed = nn.Sequential(nn.Linear(128, width), nn.ReLU())
        self.fc = nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def _shift(x: torch.Tensor, gen: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Random translation by up to ``pad`` pixels (one offset per batch, seeded)."""
    dx, dy = (int(v) for v in torch.randint(-pad, pad + 1, (2,), generator=gen))
    return torch.roll(F.pad(x, (pad,) * 4), (dy, dx), (2, 3))[..., pad:-pad, pad:-pad]


def train_cnn(x: torch.Tensor, y: torch.Tensor, num_classes: int, seed: int) -> SmallCNN:
    """Cross-entropy training on the long-tailed train split (x (N, 1, 28, 28))."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = SmallCNN(num_classes, CNN["width"])
    opt = torch.optim.SGD(
        model.parameters(), lr=CNN["lr"], momentum=CNN["momentum"], weight_decay=CNN["wd"]
    )
    steps = CNN["epochs"] * -(-len(y) // CNN["batch"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.train()
    for _ in range(CNN["epochs"]):
        perm = torch.randperm(len(y), generator=gen)
        for s in range(0, len(y), CNN["batch"]):
            idx = perm[s : s + CNN["batch"]]
            if len(idx) < 2:
                continue
            loss = F.cross_entropy(model(_shift(x[idx], gen)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def embed(model: SmallCNN, x: torch.Tensor, batch: int = 1024) -> np.ndarray:
    return torch.cat([model.features(x[s : s + batch]) for s in range(0, len(x), batch)]).numpy()


def cache_key(dataset: str, imbalance_factor: float, seed: int) -> str:
    spec = {"dataset": dataset, "if": imbalance_factor, "seed": seed, **SPLITS[dataset], **CNN}
    spec["torch"] = torch.__version__.split("+")[0]
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def features(
    dataset: str, imbalance_factor: float, seed: int, cache_dir: Path
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict]:
    """Train (or read from cache) the CNN for one split and return its frozen features."""
    key = cache_key(dataset, imbalance_factor, seed)
    path = Path(cache_dir) / f"{dataset}-if{imbalance_factor:g}-s{seed}-{key}.npz"
    if path.is_file():
        with np.load(path) as z:
            splits = {s: (z[f"X_{s}"], z[f"y_{s}"]) for s in ("train", "val", "eval")}
            info = json.loads(str(z["info"]))
        return splits, info
    ds = load_dataset(dataset, seed=seed, imbalance_factor=imbalance_factor, **SPLITS[dataset])
    images = torch.as_tensor(np.asarray(ds.images, np.float32) / 255.0)[:, None]
    idx = {"train": ds.splits.train, "val": ds.splits.val, "eval": ds.splits.eval}
    mean, std = images[idx["train"]].mean(), images[idx["train"]].std()
    images = (images - mean) / std
    labels = torch.as_tensor(ds.labels)
    C = len(ds.class_names)
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        model = train_cnn(images[idx["train"]], labels[idx["train"]], C, seed)
        splits = {s: (embed(model, images[i]), ds.labels[i]) for s, i in idx.items()}
    finally:
        torch.use_deterministic_algorithms(previous)
    Xe, ye = splits["eval"]
    with torch.no_grad():
        logits = model.fc(torch.as_tensor(Xe)).numpy()
    info = {
        "dataset": dataset,
        "imbalance_factor": imbalance_factor,
        "seed": seed,
        "split": {**SPLITS[dataset], **{s: len(i) for s, i in idx.items()}},
        "train_counts": np.bincount(labels[idx["train"]].numpy(), minlength=C).tolist(),
        "cnn": CNN,
        # the CNN's own (cross-entropy) classifier on eval, for reference only
        "cnn_eval_accuracy": round(float((logits.argmax(1) == ye).mean()), 4),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    os.close(fd)
    arrays = {f"{k}_{s}": v for s, (X, y) in splits.items() for k, v in (("X", X), ("y", y))}
    with open(tmp, "wb") as fh:
        np.savez(fh, info=json.dumps(info), **arrays)
    os.replace(tmp, path)
    return splits, info
