"""The panels lteval measures itself on: the demo's backbones, and the validation
study's feature sets. One definition each: ``make demo`` reads ``DEMO_FILE`` with
``--backbones-file``, and the study and the benchmarks import them from here.

A panel member is ``BACKBONE`` (pooled pre-logits), ``BACKBONE@LAYER`` (mean over
space of that module's output), ``cnn:EPOCHS`` (the small CNN trained that many
epochs with cross-entropy on the dataset's own long-tailed train split) or
``lt:METHOD:SEED`` (the small CNN trained ``LT_EPOCHS`` epochs by a long-tailed
method of ``lteval.backbones.lt_losses``, from its own seed). Small-CNN features
are cached like extracted ones (the key: dataset split, settings and seed).
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lteval.backbones import WeightsKind, read_name_list
from lteval.backbones.lt_losses import METHODS
from lteval.backbones.small_cnn import SmallCNNConfig, cnn_features
from lteval.constraints import SEED_MAX
from lteval.errors import UsageError
from lteval.features import FeatureOptions, RunOptions, backbone_features, cache, versions
from lteval.seeds import derive_seed

DEMO_FILE = Path(__file__).parents[1] / "rank" / "demo_backbones.txt"
"""The demo's backbones, one per line: the packaged ImageNet-1k ones and a control."""


def demo_backbones() -> list[str]:
    """The names listed in ``DEMO_FILE``, read as ``--backbones-file`` reads it."""
    return read_name_list(DEMO_FILE.read_text())


CONTROL = "random:torchvision:mobilenet_v2/IMAGENET1K_V1"
"""The random-init control of the demo and the study."""
LAYERS = {
    "torchvision:mobilenet_v2/IMAGENET1K_V1": ["features.10", "features.16"],
    "timm:tf_efficientnet_lite0": ["blocks.3", "blocks.5"],
    "timm:tf_efficientnet_lite1": ["blocks.3", "blocks.5"],
    "timm:tf_efficientnet_lite2": ["blocks.3", "blocks.5"],
}
"""Two intermediate depths of each pretrained demo backbone."""
CNN_EPOCHS = (1, 3, 10)


def study_panel() -> list[str]:
    """The validation study's default panel: 16 feature sets per dataset (each
    pretrained demo backbone at its final layer and two intermediate depths, the
    control, and the small CNN after 1, 3 and 10 epochs)."""
    pretrained = [b for b in demo_backbones() if b != CONTROL]
    return [
        *(m for b in pretrained for m in [b, *(f"{b}@{layer}" for layer in LAYERS.get(b, []))]),
        CONTROL,
        *(f"cnn:{e}" for e in CNN_EPOCHS),
    ]


SPLITS = {
    "animal-mnist-lt": {},
    "fashion-mnist-lt": {"n_max": 200, "eval_per_class": 50},
    "mnist5k-lt": {},
}
"""Split options per study dataset: the demo's scale (n_max 200, IF 100, 50 eval
images per class on animal-mnist-lt) so that the panel runs within 20 minutes on 2
cores."""

LT_EPOCHS, LT_SEEDS = 15, (1, 2, 3)
TRAINER_VERSION = 2
"""Part of a small-CNN cache key: raise it whenever training changes, so that no
cached features of an older trainer are reused."""
LT_SPLITS = {
    "animal-mnist-lt": {"n_max": 900, "eval_per_class": 50},
    "fashion-mnist-lt": {"n_max": 1000, "eval_per_class": 100},
}
"""The lt-methods panel's profile: IF 100 with n_max 900-1000, so the two rarest of
the 10 classes hold about 9 and 16 long-tailed train images, few-shot (< 20) under
the standard protocol (at n_max 200 the rarest holds 2 and few-shot accuracy rests
on 1 class)."""


@dataclass(frozen=True)
class Panel:
    """A named set of members scored on each dataset of ``splits`` (dataset ->
    split options)."""

    name: str
    members: tuple[str, ...]
    splits: dict


def panels() -> dict[str, Panel]:
    """The study's panels: ``default`` (ImageNet backbones, their layers, the
    control, cross-entropy CNNs) and ``lt-methods`` (one CNN architecture trained by
    each long-tailed method, 3 seeds each)."""
    lt = tuple(f"lt:{m}:{s}" for m in METHODS for s in LT_SEEDS)
    return {
        "default": Panel(
            "default",
            tuple(study_panel()),
            {d: SPLITS[d] for d in ("animal-mnist-lt", "fashion-mnist-lt")},
        ),
        "lt-methods": Panel("lt-methods", lt, dict(LT_SPLITS)),
    }


def parse_member(member: str) -> tuple[str, str | None, SmallCNNConfig | None, int]:
    """(backbone, layer, small-CNN settings, seed offset) of a panel member string."""
    if member.startswith("cnn:"):
        epochs = member[4:]
        if not epochs.isdigit() or int(epochs) < 1:
            raise UsageError(f"panel member {member!r}: write cnn:EPOCHS with EPOCHS >= 1")
        return "cnn", None, SmallCNNConfig(epochs=int(epochs)), 0
    if member.startswith("lt:"):
        parts = member.split(":")
        method, seed = (parts + ["", ""])[1:3]
        if (
            len(parts) != 3
            or method not in METHODS
            or not seed.isdigit()
            or str(int(seed)) != seed
            or int(seed) > SEED_MAX
        ):
            raise UsageError(
                f"panel member {member!r}: write lt:METHOD:SEED, METHOD one of "
                f"{', '.join(METHODS)}, SEED a whole number up to {SEED_MAX}"
            )
        return "cnn", None, SmallCNNConfig(epochs=LT_EPOCHS, method=method), int(seed)
    name, _, layer = member.partition("@")
    return name, layer or None, None, 0


def member_features(
    member: str, dataset, *, seed: int, input_size: int | None, run: RunOptions, progress: bool
) -> tuple[dict, dict]:
    """The member's {split: (X, y)} on ``dataset`` and its facts (kind, layer or
    epochs, num_params); extraction is cached as for ``lteval rank``."""
    name, layer, cnn, offset = parse_member(member)
    if cnn is not None:
        facts = {"kind": "cnn", "epochs": cnn.epochs}
        if member.startswith("lt:"):
            facts.update(method=cnn.method, cnn_seed=offset)
        cnn_seed = derive_seed(seed, "small-cnn", offset)  # lt:METHOD:SEED's SEED, or 0
        splits, params = _cnn_features(dataset, cnn_seed, cnn, run.lock_timeout)
        return splits, {**facts, "num_params": params}
    feats, _, backbone = backbone_features(
        name,
        dataset,
        seed=seed,
        input_size=input_size,
        options=FeatureOptions(layer=layer),
        run=run,
        progress=progress,
        tag=f"{member}:",
    )
    kind = WeightsKind(backbone.weights_info()["weights_kind"])
    splits = {k: (np.asarray(X), y) for k, (X, y) in feats.items()}
    return splits, {"kind": kind.value, "layer": layer, "num_params": backbone.num_params}


def _cnn_features(dataset, seed: int, config: SmallCNNConfig, lock_timeout: float):
    """({split: (X, y)}, parameter count) of the small CNN, from the feature cache or
    trained (under the entry's lock, so that concurrent studies train it once)."""
    identity = {
        "backbone": "small_cnn",
        "trainer_version": TRAINER_VERSION,
        "torch": torch.__version__,
        "config": config.to_dict(),
        "seed": seed,
        "dataset": dataset.name,
        "dataset_source": dataset.source,
        "split_hash": dataset.splits.hash,
    }
    key = cache.cache_key(identity)
    got = cache.load_or_build(
        key, lambda: _train_into_cache(key, identity, dataset, seed, config), timeout=lock_timeout
    )
    arrays, manifest = got
    return {s: (np.asarray(X), y) for s, (X, y, _) in arrays.items()}, manifest["num_params"]


def _train_into_cache(key: str, identity: dict, dataset, seed: int, config) -> None:
    """Train the small CNN and write its features under ``key`` (atomically)."""
    t0 = time.perf_counter()
    splits, model = cnn_features(dataset, seed, config)
    params = sum(p.numel() for m in (model.body, model.embed) for p in m.parameters())
    index = {"train": dataset.splits.train, "val": dataset.splits.val, "eval": dataset.splits.eval}
    manifest = {
        "identity": identity,
        "dataset": dataset.manifest(),
        "num_params": int(params),
        "device": "cpu",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "versions": versions(),
        "train_seconds": time.perf_counter() - t0,
    }
    arrays = {s: (X, y, index[s]) for s, (X, y) in splits.items()}
    cache.write_entry(key, lambda: arrays, manifest)
