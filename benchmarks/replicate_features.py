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

from lteval.backbones.small_cnn import SmallCNNConfig, cnn_features
from lteval.data import load_dataset

# dataset -> split options (animal-mnist: a larger n_max than the registry's 200
# so that the CNN has images to learn from; eval 100 per class of its 1,000)
SPLITS = {
    "fashion-mnist-lt": {"n_max": 2000, "eval_per_class": 300},
    "animal-mnist-lt": {"n_max": 900, "eval_per_class": 100},
}
CNN = SmallCNNConfig().to_dict()


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
    splits, model = cnn_features(ds, seed, SmallCNNConfig(**CNN))
    C = len(ds.class_names)
    idx = {"train": ds.splits.train, "val": ds.splits.val, "eval": ds.splits.eval}
    Xe, ye = splits["eval"]
    with torch.no_grad():
        logits = model.fc(torch.as_tensor(Xe)).numpy()
    info = {
        "dataset": dataset,
        "imbalance_factor": imbalance_factor,
        "seed": seed,
        "split": {**SPLITS[dataset], **{s: len(i) for s, i in idx.items()}},
        "train_counts": np.bincount(ds.labels[idx["train"]], minlength=C).tolist(),
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
