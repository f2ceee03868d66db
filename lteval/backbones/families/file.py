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

import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from lteval.backbones.checkpoints import load_weights_only, timm_from_file
from lteval.backbones.families.base import Family, pool_output
from lteval.backbones.families.timm import timm_transform
from lteval.backbones.names import BackboneSpec
from lteval.errors import BackboneError, read_user_json, short

IMAGENET_DEFAULT = {
    "input_size": (3, 224, 224),
    "interpolation": "bilinear",
    "crop_pct": 0.875,
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
}


class _Pooled(nn.Module):
    """Wraps a module so that its output is (B, D)."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pool_output(self.body(x))


def _torchscript(path: Path) -> nn.Module | None:
    """The TorchScript module in ``path``, or None when it holds none. torch 2.14
    deprecates ``torch.jit.load`` with a FutureWarning on every call; TorchScript files
    are what users have, so the warning is not repeated on every run."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError):
        return None


INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
"""The resampling a sidecar may name (what timm's ``create_transform`` takes)."""


def sidecar_config(sidecar: Path) -> dict:
    """The timm data config in a TorchScript file's sidecar JSON, checked key by key:
    ``input_size`` [3, H, W], ``mean`` / ``std`` three numbers (std > 0),
    ``interpolation`` one of ``INTERPOLATIONS``, ``crop_pct`` in (0, 1]. BackboneError
    naming the sidecar and the key otherwise (an unknown key included)."""
    cfg = read_user_json(sidecar, "the transform sidecar", BackboneError)
    example = '{"input_size": [3, 224, 224], "crop_pct": 0.875}'
    if not isinstance(cfg, dict):
        raise BackboneError(
            f"the transform sidecar {sidecar} must hold a JSON object (a timm data config "
            f"such as {example})"
        )
    unknown = sorted(set(cfg) - set(IMAGENET_DEFAULT))
    if unknown:
        raise BackboneError(
            f"the transform sidecar {sidecar} holds unknown key(s) {short(unknown)}; "
            f"known: {', '.join(IMAGENET_DEFAULT)}"
        )

    def numbers(v, n):
        return (
            isinstance(v, list)
            and len(v) == n
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
        )

    checks = {
        "input_size": (
            lambda v: numbers(v, 3) and v[0] == 3 and all(16 <= x <= 4096 for x in v[1:]),
            "[3, height, width], sides 16..4096 pixels",
        ),
        "mean": (lambda v: numbers(v, 3), "three numbers, one per RGB channel"),
        "std": (lambda v: numbers(v, 3) and min(v) > 0, "three positive numbers"),
        "interpolation": (lambda v: v in INTERPOLATIONS, f"one of {', '.join(INTERPOLATIONS)}"),
        "crop_pct": (
            lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 1,
            "a number in (0, 1]",
        ),
    }
    for key, value in cfg.items():
        ok, takes = checks[key]
        if not ok(value):
            raise BackboneError(
                f"the transform sidecar {sidecar}: {key} = {short(value)}; it takes {takes}"
            )
    return cfg


class FileFamily(Family):
    """A checkpoint the user names by path: TorchScript, or timm weights."""

    name = "file"
    layer_prefix = "body."  # _Pooled.body of a TorchScript file; a timm model is unwrapped
    pooling = "TorchScript output averaged over space / tokens, or timm pre-logits"
    listable = False

    def parse(self, name: str, rest: str, random_init: bool) -> BackboneSpec:
        """``path[#arch]``: the path may hold '/' and '.', only '#<arch>' is special."""
        if random_init:
            raise BackboneError(
                f"{name!r}: a random control needs an architecture, not a file; write "
                "random:timm:<model> or random:torchvision:<model>"
            )
        path, _, tag = rest.partition("#")
        return BackboneSpec(name, self.name, path, tag or None)

    def check(self, spec: BackboneSpec) -> None:
        if not Path(spec.arch).is_file():
            raise BackboneError(
                f"{spec.name}: {spec.arch} does not exist. 'file:' takes a TorchScript file "
                "or a timm checkpoint (file:/path/ckpt.pth#<timm arch> when the checkpoint "
                "has no 'arch')"
            )

    def find(self, spec: BackboneSpec, searched: list[str]) -> Path | None:
        searched.append(f"file: {spec.arch}")
        return Path(spec.arch)

    def load(
        self,
        spec: BackboneSpec,
        path: Path | None,
        *,
        input_size: int | None = None,
        keep_classifier: bool = False,
    ) -> tuple[nn.Module, Callable]:
        from timm.data import create_transform

        path = Path(spec.arch) if path is None else path
        scripted = _torchscript(path)
        if scripted is not None:
            if keep_classifier:
                raise BackboneError(f"{path} is TorchScript: its output is used as it is")
            sidecar = path.with_name(path.name + ".json")
            cfg = {**IMAGENET_DEFAULT, **(sidecar_config(sidecar) if sidecar.is_file() else {})}
            side = (3, input_size, input_size) if input_size else tuple(cfg["input_size"])
            cfg["input_size"] = side
            return _Pooled(scripted), create_transform(**cfg, is_training=False)
        return self._load_timm(spec, path, input_size, keep_classifier)

    def _load_timm(
        self, spec: BackboneSpec, path: Path, input_size: int | None, keep_classifier: bool
    ) -> tuple[nn.Module, Callable]:
        """A timm checkpoint: the architecture from ``#arch`` or the file's ``arch``."""
        import timm

        ckpt = None
        if not spec.tag:
            try:
                ckpt = load_weights_only(path)
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
        if not timm.is_model(arch):
            raise BackboneError(f"{spec.name}: {arch!r} is not a timm architecture")
        model = timm_from_file(arch, path, keep_classifier=keep_classifier)
        return model, timm_transform(model, input_size)

    def fetch_hint(self, spec: BackboneSpec) -> str:
        return f"copy {spec.arch} to this machine"
