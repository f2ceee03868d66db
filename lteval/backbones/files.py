"""The ``file:`` family: a local TorchScript file, or a timm checkpoint.

- ``file:/path/model.pt`` holding TorchScript: the module's output is the feature
  (4-D outputs are averaged over H, W; 3-D over tokens). The transform comes from a
  sidecar ``/path/model.pt.json`` holding a timm data config (``input_size``,
  ``mean``, ``std``, ``interpolation``, ``crop_pct``), else the ImageNet default
  (224, crop 0.875, ImageNet mean and std).
- ``file:/path/checkpoint.pth`` holding a timm checkpoint: the architecture comes
  from the checkpoint's ``arch`` entry (what timm's train.py saves) or from a
  ``#<arch>`` suffix, e.g. ``file:/ckpt/last.pth#resnet50``; timm's own loader reads
  the weights and the transform is timm's data config for that architecture.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from lteval.errors import BackboneError

IMAGENET_DEFAULT = {
    "input_size": (3, 224, 224),
    "interpolation": "bilinear",
    "crop_pct": 0.875,
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
}


def pool_output(out) -> torch.Tensor:
    """A module output as (B, D): 4-D (NCHW) averaged over H, W; 3-D (B, tokens, C)
    averaged over tokens; a tuple or list contributes its first element."""
    out = out[0] if isinstance(out, tuple | list) else out
    if out.ndim == 4:
        return out.mean(dim=(2, 3))
    if out.ndim == 3:
        return out.mean(dim=1)
    return out.flatten(1)


class _Pooled(nn.Module):
    """Wraps a module so that its output is (B, D)."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pool_output(self.body(x))


def file_check(spec) -> None:
    if not Path(spec.arch).is_file():
        raise BackboneError(
            f"{spec.name}: {spec.arch} does not exist. 'file:' takes a TorchScript file or a "
            "timm checkpoint (file:/path/ckpt.pth#<timm arch> when the checkpoint has no 'arch')"
        )


def file_find(spec, searched: list[str]) -> Path:
    searched.append(f"file: {spec.arch}")
    return Path(spec.arch)


def _torchscript(path: Path) -> nn.Module | None:
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError):
        return None


def file_load(spec, path: Path | None, *, input_size=None, keep_classifier=False):
    from timm.data import create_transform

    path = Path(spec.arch) if path is None else path
    scripted = _torchscript(path)
    if scripted is not None:
        if keep_classifier:
            raise BackboneError(f"{path} is TorchScript: its output is used as it is")
        sidecar = path.with_name(path.name + ".json")
        cfg = json.loads(sidecar.read_text()) if sidecar.is_file() else IMAGENET_DEFAULT
        cfg = {**IMAGENET_DEFAULT, **cfg}
        cfg["input_size"] = (3, input_size, input_size) if input_size else tuple(cfg["input_size"])
        return _Pooled(scripted), create_transform(**cfg, is_training=False)
    import timm

    from lteval.backbones.checkpoints import timm_from_file

    ckpt = None
    if not spec.tag:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise BackboneError(
                f"{path} is neither TorchScript nor a torch checkpoint: {e}"
            ) from None
    arch = spec.tag or (ckpt.get("arch") if isinstance(ckpt, dict) else None)
    if not arch:
        raise BackboneError(
            f"{path} does not say its architecture (no 'arch' entry); name it: "
            f"file:{path}#<timm model>, e.g. file:{path}#resnet50"
        )
    if arch not in timm.list_models():
        raise BackboneError(f"{spec.name}: {arch!r} is not a timm architecture")
    model = timm_from_file(arch, path, keep_classifier=keep_classifier)
    return model, timm_transform(model, input_size)


def timm_transform(model: nn.Module, input_size: int | None = None) -> Callable:
    """timm's eval transform for ``model``'s pretrained config, at ``input_size``."""
    from timm.data import create_transform, resolve_data_config

    args = {"input_size": (3, input_size, input_size)} if input_size else {}
    return create_transform(**resolve_data_config(args, model=model), is_training=False)


def file_fetch(spec) -> str:
    return f"copy {spec.arch} to this machine"
