"""The ``torchvision:`` family: ``torchvision:<model>[/<WEIGHTS enum member>]``.

Weights are looked up under their official file name in TORCH_HOME's checkpoints
(where torchvision's own loader keeps them, and where lteval puts the packaged
MobileNetV2). The model is torchvision's with its final Linear replaced by
Identity, wrapped so that its output is flattened: module ``features`` of the
library is ``body.features`` of the wrapper.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from lteval.backbones.checkpoints import load_strict, torch_state
from lteval.backbones.families.base import Family, close_matches, fixed_size
from lteval.backbones.names import BackboneSpec
from lteval.backbones.weights import find_url_checkpoint
from lteval.errors import BackboneError

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum


def weights_of(spec: BackboneSpec) -> WeightsEnum:
    """The torchvision weights enum member ``spec`` names (``DEFAULT`` without a tag).
    Raises BackboneError for an unknown model or weights name."""
    import torchvision

    if spec.arch not in torchvision.models.list_models():
        raise BackboneError(
            f"unknown torchvision model {spec.arch!r} in {spec.name!r}."
            + close_matches(spec.arch, torchvision.models.list_models())
        )
    enum = torchvision.models.get_model_weights(spec.arch)
    tag = spec.tag or "DEFAULT"
    try:
        return enum[tag]
    except KeyError:
        raise BackboneError(
            f"torchvision weights {tag!r} do not exist for {spec.arch!r}; "
            f"choose one of {[w.name for w in enum]}"
        ) from None


class _Flatten(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.body(x), 1)


def _last_linear(model: nn.Module) -> str:
    last = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not last:
        raise BackboneError(f"{type(model).__name__} has no Linear classifier to remove")
    return last[-1]


def _strip(model: nn.Module, head: str) -> nn.Module:
    """Replace the classifier's final Linear by Identity: pooled pre-logit features."""
    *parents, leaf = head.split(".")
    owner = model.get_submodule(".".join(parents)) if parents else model
    setattr(owner, leaf, nn.Identity())
    return _Flatten(model)


def tv_transform(weights: WeightsEnum, input_size: int | None) -> Callable:
    """The weights' own transform; ``input_size`` replaces the crop (the resize keeps
    the weights' resize-to-crop ratio)."""
    if not input_size:
        return weights.transforms()
    kw = weights.transforms.keywords
    crop = kw.get("crop_size", 224)
    resize = kw.get("resize_size", 256)
    resize = resize[0] if isinstance(resize, list | tuple) else resize
    return weights.transforms(crop_size=input_size, resize_size=round(input_size * resize / crop))


class TorchvisionFamily(Family):
    """torchvision classification models and their weights enums."""

    name = "torchvision"
    layer_prefix = "body."  # _Flatten.body
    pooling = "torchvision pre-logits (the model's own pooling, final Linear removed), flattened"

    def check(self, spec: BackboneSpec) -> None:
        weights_of(spec)

    def find(self, spec: BackboneSpec, searched: list[str]) -> Path | None:
        return find_url_checkpoint(weights_of(spec).url, searched)

    def load(
        self,
        spec: BackboneSpec,
        path: Path | None,
        *,
        input_size: int | None = None,
        keep_classifier: bool = False,
    ) -> tuple[nn.Module, Callable]:
        import torchvision

        weights = weights_of(spec)
        model = torchvision.models.get_model(spec.arch, weights=None)
        fixed_size(spec.name, getattr(model, "image_size", None), input_size)
        head = _last_linear(model)
        if path is not None:  # torchvision's checkpoints are plain state dicts
            drop = () if keep_classifier else (head,)
            load_strict(model, torch_state(path), path, spec.arch, drop)
        if not keep_classifier:
            model = _strip(model, head)
        return model, tv_transform(weights, input_size)

    def fetch_hint(self, spec: BackboneSpec) -> str:
        w = weights_of(spec)
        return (
            f"python -c \"import torchvision; torchvision.models.get_model('{spec.arch}', "
            f"weights='{type(w).__name__}.{w.name}')\""
        )

    def list_names(self) -> list[str]:
        import torchvision

        out = []
        for arch in torchvision.models.list_models(module=torchvision.models):
            weights = torchvision.models.get_model_weights(arch)
            out += [f"torchvision:{arch}/{w.name}" for w in weights]
        return out
