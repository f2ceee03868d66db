"""Backbones addressed by name: ``family:architecture[/tag]``.

Families: ``timm:<model>[.<tag>]``, ``torchvision:<model>[/<WEIGHTS enum member>]``,
``open_clip:<arch>/<pretrained tag>``, ``file:<path>[#<timm arch>]`` (a TorchScript
file or a timm checkpoint, see lteval.backbones.files). Each loader returns a ``Backbone`` whose
``model`` maps a (B, 3, H, W) batch to (B, D) pooled pre-logit features and whose
``transform`` is the preprocessing that belongs to the weights (timm's resolved
data config, open_clip's preprocess, torchvision's ``weights.transforms()``).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lteval.backbones.files import file_check, file_fetch, file_find, file_load
from lteval.backbones.weights import (
    BackboneError,
    WeightsNotFoundError,
    find_in_hf_cache,
    find_url_checkpoint,
)


@dataclass(frozen=True)
class BackboneSpec:
    """A parsed backbone name."""

    name: str
    family: str
    arch: str
    tag: str | None


@dataclass
class Backbone:
    """A frozen feature extractor and the transform that travels with its weights."""

    spec: BackboneSpec
    model: nn.Module
    transform: Callable
    pretrained: bool
    weights: str  # the checkpoint file used, or "random-init"
    num_params: int

    @property
    def name(self) -> str:
        return self.spec.name

    def identity(self) -> dict:
        """Everything that determines the features (enters the cache key)."""
        return {
            "backbone": self.name,
            "weights": self.weights,
            "weights_id": _file_id(self.weights) if self.pretrained else "random-init",
            "transform": repr(self.transform),
        }


@functools.lru_cache(maxsize=64)
def _content_sha256(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()[:16]


def _file_id(path: str) -> str:
    """sha256 of the checkpoint's bytes (memoised per path, size and mtime)."""
    st = Path(path).stat()
    return _content_sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def _close(word: str, options: list[str]) -> str:
    near = difflib.get_close_matches(word, options, n=5, cutoff=0.5)
    return f" Closest matches: {', '.join(near)}." if near else ""


# ---------------------------------------------------------------- timm
def _timm_check(spec: BackboneSpec) -> None:
    import timm

    if spec.arch not in timm.list_models():
        raise BackboneError(
            f"unknown timm model {spec.arch!r} in {spec.name!r}."
            + _close(spec.arch, timm.list_models())
        )


def _timm_find(spec: BackboneSpec, searched: list[str]) -> Path | None:
    import timm

    cfg = timm.models.get_pretrained_cfg(spec.arch + (f".{spec.tag}" if spec.tag else ""))
    if cfg is None:
        raise BackboneError(f"timm has no pretrained tag {spec.tag!r} for {spec.arch!r}")
    found = None
    if cfg.hf_hub_id:
        found = find_in_hf_cache(
            cfg.hf_hub_id, ["model.safetensors", "pytorch_model.bin"], searched
        )
    return found or find_url_checkpoint(cfg.url, searched)


def _timm_load(spec: BackboneSpec, path: Path | None) -> tuple[nn.Module, Callable]:
    import timm
    from timm.data import create_transform, resolve_data_config

    full = spec.arch + (f".{spec.tag}" if spec.tag else "")
    if path is None:
        model = timm.create_model(full, pretrained=False, num_classes=0)
    else:  # timm's own loading code, pointed at the local file
        model = timm.create_model(
            full, pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": str(path)}
        )
    transform = create_transform(**resolve_data_config({}, model=model), is_training=False)
    return model, transform


def _timm_fetch(spec: BackboneSpec) -> str:
    full = spec.arch + (f".{spec.tag}" if spec.tag else "")
    return f"python -c \"import timm; timm.create_model('{full}', pretrained=True)\""


# ---------------------------------------------------------------- torchvision
def _tv_weights(spec: BackboneSpec):
    import torchvision

    if spec.arch not in torchvision.models.list_models():
        raise BackboneError(
            f"unknown torchvision model {spec.arch!r} in {spec.name!r}."
            + _close(spec.arch, torchvision.models.list_models())
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


def _tv_check(spec: BackboneSpec) -> None:
    _tv_weights(spec)


def _tv_find(spec: BackboneSpec, searched: list[str]) -> Path | None:
    return find_url_checkpoint(_tv_weights(spec).url, searched)


class _Flatten(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.body(x), 1)


def _strip_last_linear(model: nn.Module) -> nn.Module:
    """Replace the classifier's final Linear by Identity: pooled pre-logit features."""
    last = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not last:
        raise BackboneError(f"{type(model).__name__} has no Linear classifier to remove")
    *parents, leaf = last[-1].split(".")
    owner = model.get_submodule(".".join(parents)) if parents else model
    setattr(owner, leaf, nn.Identity())
    return _Flatten(model)


def _tv_load(spec: BackboneSpec, path: Path | None) -> tuple[nn.Module, Callable]:
    import torchvision

    weights = _tv_weights(spec)
    model = torchvision.models.get_model(spec.arch, weights=None)
    if path is not None:  # torchvision's checkpoints are plain state dicts
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
    return _strip_last_linear(model), weights.transforms()


def _tv_fetch(spec: BackboneSpec) -> str:
    w = _tv_weights(spec)
    return (
        f"python -c \"import torchvision; torchvision.models.get_model('{spec.arch}', "
        f"weights='{type(w).__name__}.{w.name}')\""
    )


# ---------------------------------------------------------------- open_clip
def _oc_check(spec: BackboneSpec) -> None:
    import open_clip

    if spec.arch not in open_clip.list_models():
        raise BackboneError(
            f"unknown open_clip architecture {spec.arch!r} in {spec.name!r}."
            + _close(spec.arch, open_clip.list_models())
        )
    tags = open_clip.list_pretrained_tags_by_model(spec.arch)
    if spec.tag is None or spec.tag not in tags:
        raise BackboneError(
            f"open_clip needs a known pretrained tag: write 'open_clip:{spec.arch}/TAG' "
            f"with TAG one of {tags}"
        )


def _oc_find(spec: BackboneSpec, searched: list[str]) -> Path | None:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(spec.arch, spec.tag)
    found = None
    if cfg.get("hf_hub"):  # "org/repo/" (default file names) or "org/repo/file"
        parts = cfg["hf_hub"].rstrip("/").split("/")
        names = parts[2:] or ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        found = find_in_hf_cache("/".join(parts[:2]), names, searched)
    clip_dir = Path.home() / ".cache" / "clip"
    return found or find_url_checkpoint(cfg.get("url"), searched, extra_dirs=[clip_dir])


class _ClipImageEncoder(nn.Module):
    def __init__(self, visual: nn.Module):
        super().__init__()
        self.visual = visual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x)


def _oc_load(spec: BackboneSpec, path: Path | None) -> tuple[nn.Module, Callable]:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(spec.arch, spec.tag)
    model, _, preprocess = open_clip.create_model_and_transforms(
        spec.arch,
        pretrained=str(path) if path is not None else None,
        quick_gelu=bool(cfg.get("quick_gelu", False)),
        image_mean=cfg.get("mean"),
        image_std=cfg.get("std"),
    )
    return _ClipImageEncoder(model.visual), preprocess


def _oc_fetch(spec: BackboneSpec) -> str:
    return (
        f'python -c "import open_clip; open_clip.create_model_and_transforms('
        f"'{spec.arch}', pretrained='{spec.tag}')\""
    )


@dataclass(frozen=True)
class Family:
    check: Callable[[BackboneSpec], None]
    find: Callable[[BackboneSpec, list[str]], Path | None]
    load: Callable[[BackboneSpec, Path | None], tuple[nn.Module, Callable]]
    fetch_hint: Callable[[BackboneSpec], str]


FAMILIES: dict[str, Family] = {
    "timm": Family(_timm_check, _timm_find, _timm_load, _timm_fetch),
    "torchvision": Family(_tv_check, _tv_find, _tv_load, _tv_fetch),
    "open_clip": Family(_oc_check, _oc_find, _oc_load, _oc_fetch),
    "file": Family(file_check, file_find, file_load, file_fetch),
}


def parse_name(name: str) -> BackboneSpec:
    """Split ``family:arch[/tag]`` (timm also accepts ``arch.tag``) and check the family."""
    family, sep, rest = name.partition(":")
    if not sep or not rest:
        raise BackboneError(
            f"backbone name {name!r} must look like FAMILY:MODEL, with FAMILY one of "
            f"{sorted(FAMILIES)} (e.g. timm:resnet18, open_clip:ViT-B-32/openai)"
        )
    if family not in FAMILIES:
        raise BackboneError(
            f"unknown backbone family {family!r} in {name!r}; choose one of {sorted(FAMILIES)}"
        )
    if family == "file":  # the path may hold '/' and '.': only '#<arch>' is special
        path, _, tag = rest.partition("#")
        return BackboneSpec(name, family, path, tag or None)
    arch, _, tag = rest.partition("/")
    if family == "timm" and "." in arch and not tag:
        arch, _, tag = arch.partition(".")
    return BackboneSpec(name, family, arch, tag or None)


def resolve_weights(
    name: str, weights_file: str | Path | None = None, allow_random_init: bool = False
) -> Path | None:
    """Check ``name`` and find its pretrained weights without building the model.

    Returns the checkpoint path, or None when running with random init (only if
    ``allow_random_init``). Raises BackboneError or WeightsNotFoundError.
    """
    spec = parse_name(name)
    family = FAMILIES[spec.family]
    family.check(spec)
    if weights_file is not None:
        p = Path(weights_file)
        if not p.is_file():
            raise WeightsNotFoundError(
                name, [f"file named by --weights: {p}"], family.fetch_hint(spec)
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
) -> Backbone:
    """Build backbone ``name`` in eval mode on the CPU (move it with ``.to``).

    Random initialisation (only with ``allow_random_init``) is seeded from ``seed``
    and the name, so the same call gives the same weights.
    """
    path = resolve_weights(name, weights_file, allow_random_init)
    spec = parse_name(name)
    digest = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 1_000_003 + digest)
        model, transform = FAMILIES[spec.family].load(spec, path)
    model.eval().requires_grad_(False)
    return Backbone(
        spec=spec,
        model=model,
        transform=transform,
        pretrained=path is not None,
        weights=str(path) if path is not None else "random-init",
        num_params=sum(p.numel() for p in model.parameters()),
    )
