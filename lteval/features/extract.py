"""Run a backbone over some images of a dataset: the batch extraction under a
cache entry (``lteval.features.job`` chunks it, shares it between ``torchrun`` ranks
and caches it), and what a cache key hashes.

On CUDA: autocast (bf16 where supported, else fp16), channels_last, pinned memory
and non-blocking copies; DataLoader workers decode and transform in parallel on any
device.
"""

from __future__ import annotations

import contextlib
import difflib
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

import lteval
from lteval.backbones import Backbone
from lteval.backbones.families import LAYER_POOLING, pool_output
from lteval.data import ImageDataset
from lteval.errors import DatasetError, UsageError, arg

SPLITS = ("train", "val", "eval")


@dataclass(frozen=True)
class FeatureOptions:
    """What to extract and how to store it (all of it enters the cache key).

    layer: a module name of the backbone (``None``: the pooled pre-logit embedding);
        4-D outputs are averaged over H, W (NCHW), 3-D token outputs over tokens.
    l2_normalize: scale each feature vector to unit L2 norm before storage.
    storage: "float32" or "float16" on disk.
    """

    layer: str | None = None
    l2_normalize: bool = False
    storage: str = "float32"

    def __post_init__(self):
        if self.storage not in ("float32", "float16"):
            raise UsageError(f"{arg('storage', self.storage)}: choose float32 or float16")


@dataclass
class RunOptions:
    """How to run extraction (none of it changes the features)."""

    device: torch.device = torch.device("cpu")
    batch_size: int = 64
    num_workers: int = 0
    chunk_size: int = 2048
    skip_bad_images: bool = False
    lock_timeout: float = 3600.0  # seconds to wait for another run's lock on a cache entry
    # under torchrun: each rank extracts a share of every backbone's images (``lteval
    # extract``); False: this rank extracts its backbones whole (``lteval rank``)
    shard_images: bool = True


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` means CUDA when available, else CPU. Errors name the bad value."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(
            f"{arg('device', device)} is not a torch device (auto, cpu, cuda)"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"{arg('device', device)} asked for CUDA but none is available; use cpu")
    return dev


class _Images(Dataset):
    """(position, tensor, error) for each dataset index; unreadable images give an error."""

    def __init__(self, dataset: ImageDataset, positions: np.ndarray, transform: Callable):
        self.dataset, self.positions, self.transform = dataset, positions, transform

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int):
        pos = int(self.positions[i])
        try:
            return pos, self.transform(self.dataset.image(pos)), ""
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            # PIL's errors for bad files; a decompression bomb is an image over PIL's
            # pixel limit (Image.MAX_IMAGE_PIXELS), refused before it is decoded
            return pos, None, f"{type(e).__name__}: {e}"


def _collate(items):
    good = [(p, t) for p, t, err in items if not err]
    bad = [(p, err) for p, _, err in items if err]
    if not good:
        return torch.zeros(0, dtype=torch.long), None, bad
    return torch.tensor([p for p, _ in good]), torch.stack([t for _, t in good]), bad


@contextlib.contextmanager
def _features_fn(backbone: Backbone, layer: str | None):
    """The function mapping a batch to (B, D) features, for ``layer`` or the default."""
    model = backbone.model
    if layer is None:
        yield model
        return
    names = dict(model.named_modules())
    # the library's own module name, or the same name under the family's wrapper
    name = next((n for n in (layer, backbone.layer_prefix + layer) if n in names), None)
    if name is None:
        near = difflib.get_close_matches(layer, list(names), n=5, cutoff=0.4)
        raise UsageError(f"{arg('layer', layer)} is not a module of {backbone.name}; close: {near}")
    captured = {}
    handle = names[name].register_forward_hook(lambda m, i, o: captured.__setitem__("out", o))
    try:
        yield lambda x: (model(x), pool_output(captured.pop("out")))[1]
    finally:
        handle.remove()


@torch.inference_mode()
def extract(
    backbone: Backbone,
    dataset: ImageDataset,
    positions: np.ndarray,
    *,
    run: RunOptions | None = None,
    options: FeatureOptions | None = None,
    progress: Callable[[int], None] | None = None,
    stats: dict | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features of ``dataset[positions]``: (X (M, D) float32, kept positions (M,), bad (K,)).

    An unreadable image raises DatasetError naming it, unless
    ``run.skip_bad_images``: then it is left out and its position returned in ``bad``.
    ``progress(n)`` is called with the number of images done in each batch; ``stats``
    counts ``forward_batches`` and ``images``.
    """
    run, options = run or RunOptions(), options or FeatureOptions()
    device = run.device
    cuda = device.type == "cuda"
    model = backbone.model.to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
    loader = DataLoader(
        _Images(dataset, positions, backbone.transform),
        batch_size=run.batch_size,
        num_workers=run.num_workers,
        collate_fn=_collate,
        pin_memory=cuda,
    )
    feats, kept, bad = [], [], []
    with _features_fn(backbone, options.layer) as fn:
        for pos, batch, errors in loader:
            for p, err in errors:
                if not run.skip_bad_images:
                    raise DatasetError(
                        f"cannot read image {dataset.describe(p)} ({err}); fix "
                        f"or remove it, or pass {arg('skip_bad_images', True)} to leave it out"
                    )
                bad.append(p)
            if batch is not None:
                if cuda:
                    batch = batch.to(device, non_blocking=True, memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=dtype, enabled=cuda):
                    out = fn(batch)
                out = out.float()
                if options.l2_normalize:
                    out = torch.nn.functional.normalize(out, dim=1)
                feats.append(out.cpu().numpy())
                kept.append(pos.numpy())
                if stats is not None:
                    stats["forward_batches"] = stats.get("forward_batches", 0) + 1
                    stats["images"] = stats.get("images", 0) + len(pos)
            if progress:
                progress(len(pos) + len(errors))
    model.to("cpu")
    if not feats:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64), np.asarray(bad, np.int64)
    return np.concatenate(feats), np.concatenate(kept), np.asarray(bad, np.int64)


def feature_identity(backbone: Backbone, dataset: ImageDataset, options: FeatureOptions) -> dict:
    """What the cache key hashes: backbone, weights (their content hash, not their
    path), transform, layer, pooling, dataset, split."""
    return {
        **backbone.identity(),
        **asdict(options),
        "pooling": backbone.pooling if options.layer is None else LAYER_POOLING,
        "dataset": dataset.name,
        "dataset_source": dataset.source,
        "split_hash": dataset.splits.hash,
        # files are read upright (EXIF orientation): features from before are not reused
        **({"exif_orientation": "applied"} if dataset.from_files else {}),
    }


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
