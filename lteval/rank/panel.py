"""The panels lteval measures itself on: the demo's backbones, and the validation
study's feature sets. One definition each: ``make demo`` reads ``DEMO_FILE`` with
``--backbones-file``, and the study and the benchmarks import them from here.

A panel member is ``BACKBONE`` (pooled pre-logits), ``BACKBONE@LAYER`` (mean over
space of that module's output) or ``cnn:EPOCHS`` (the small CNN trained that many
epochs on the dataset's own long-tailed train split).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lteval.backbones import WeightsKind, read_name_list
from lteval.errors import UsageError
from lteval.features import FeatureOptions, RunOptions, backbone_features

DEMO_FILE = Path(__file__).with_name("demo_backbones.txt")
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


def parse_member(member: str) -> tuple[str, str | None, int | None]:
    """(backbone, layer, cnn epochs) of a panel member string."""
    if member.startswith("cnn:"):
        epochs = member[4:]
        if not epochs.isdigit() or int(epochs) < 1:
            raise UsageError(f"panel member {member!r}: write cnn:EPOCHS with EPOCHS >= 1")
        return "cnn", None, int(epochs)
    name, _, layer = member.partition("@")
    return name, layer or None, None


def member_features(
    member: str, dataset, *, seed: int, input_size: int | None, run: RunOptions, progress: bool
) -> tuple[dict, dict]:
    """The member's {split: (X, y)} on ``dataset`` and its facts (kind, layer or
    epochs, num_params); extraction is cached as for ``lteval rank``."""
    name, layer, epochs = parse_member(member)
    if epochs is not None:
        from lteval.backbones.small_cnn import SmallCNNConfig, cnn_features

        splits, model = cnn_features(dataset, seed, SmallCNNConfig(epochs=epochs))
        params = sum(p.numel() for m in (model.body, model.embed) for p in m.parameters())
        return splits, {"kind": "cnn", "epochs": epochs, "num_params": int(params)}
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
