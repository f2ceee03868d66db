"""Run a backbone over a dataset's splits and cache the features."""

from __future__ import annotations

import datetime
import platform
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

import lteval
from lteval.backbones import Backbone
from lteval.data import ImageDataset
from lteval.errors import UsageError
from lteval.features import cache

SPLITS = ("train", "val", "eval")


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` means CUDA when available, else CPU. Errors name the bad value."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(
            f"--device {device!r} is not a torch device (try auto, cpu, cuda)"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            f"--device {device} asked for CUDA but none is available; use --device cpu"
        )
    return dev


@torch.inference_mode()
def extract(
    backbone: Backbone,
    dataset: ImageDataset,
    indices: np.ndarray,
    *,
    device: torch.device,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Features of ``dataset[indices]``: (len(indices), D) float32.

    Images go through the backbone's own transform. On CUDA the forward pass
    runs under autocast (bf16 where supported, else fp16) with channels_last.
    """
    model = backbone.model.to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
    out = []
    for start in range(0, len(indices), batch_size):
        batch = torch.stack(
            [backbone.transform(dataset.image(int(i))) for i in indices[start : start + batch_size]]
        )
        if cuda:
            batch = batch.pin_memory().to(device, non_blocking=True)
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype, enabled=cuda):
            feats = model(batch)
        out.append(feats.float().cpu().numpy())
        if progress:
            progress(min(start + batch_size, len(indices)), len(indices))
    model.to("cpu")
    dim = out[0].shape[1] if out else 0
    return np.concatenate(out) if out else np.zeros((0, dim), np.float32)


def feature_identity(backbone: Backbone, dataset: ImageDataset) -> dict:
    """What the cache key hashes: backbone, weights, transform, dataset and split."""
    return {
        **backbone.identity(),
        "layer": "pooled-pre-logits",
        "l2_normalised": False,
        "dtype": "float32",
        "dataset": dataset.name,
        "dataset_source": dataset.source,
        "split_hash": dataset.splits.hash,
    }


def get_features(
    backbone: Backbone,
    dataset: ImageDataset,
    *,
    device: torch.device,
    batch_size: int = 64,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict]:
    """Cached features of every split: ``({split: (X, y)}, manifest)``.

    Extracts (and caches) on a miss; a hit does no forward pass at all.
    """
    identity = feature_identity(backbone, dataset)
    key = cache.cache_key(identity)
    arrays = cache.load_entry(key)
    if arrays is None:
        manifest = {
            "identity": identity,
            "dataset": dataset.manifest(),
            "num_params": backbone.num_params,
            "pretrained": backbone.pretrained,
            "device": str(device),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "versions": versions(),
            "extract_seconds_per_split": {},
        }

        def compute():
            out = {}
            for split in SPLITS:
                idx = getattr(dataset.splits, split)
                t0 = time.perf_counter()
                cb = (lambda d, n, s=split: progress(s, d, n)) if progress else None
                X = extract(
                    backbone, dataset, idx, device=device, batch_size=batch_size, progress=cb
                )
                manifest["extract_seconds_per_split"][split] = time.perf_counter() - t0
                out[split] = (X, dataset.labels[idx])
            manifest["extract_seconds"] = sum(manifest["extract_seconds_per_split"].values())
            return out

        cache.write_entry(key, compute, manifest)
        arrays = cache.load_entry(key)
        if arrays is None:  # pragma: no cover - the entry we just wrote is unreadable
            raise OSError(f"feature cache entry {cache.cache_root() / key} could not be read back")
    return arrays, cache.read_manifest(key)


def versions() -> dict:
    import timm
    import torchvision

    try:
        import open_clip

        oc = open_clip.__version__
    except Exception:  # pragma: no cover
        oc = "missing"
    return {
        "lteval": lteval.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "open_clip": oc,
        "numpy": np.__version__,
    }
