"""Every backbone name that can be given, per family, and which are cached locally."""

from __future__ import annotations

from lteval.backbones.families import FAMILIES
from lteval.backbones.names import parse_name


def _timm() -> list[str]:
    import timm

    return [f"timm:{n}" for n in timm.list_pretrained()]


def _torchvision() -> list[str]:
    import torchvision

    out = []
    for arch in torchvision.models.list_models(module=torchvision.models):
        out += [f"torchvision:{arch}/{w.name}" for w in torchvision.models.get_model_weights(arch)]
    return out


def _open_clip() -> list[str]:
    import open_clip

    return [f"open_clip:{arch}/{tag}" for arch, tag in open_clip.list_pretrained()]


LISTERS = {"timm": _timm, "torchvision": _torchvision, "open_clip": _open_clip}


def list_names(
    family: str | None = None, text: str | None = None, cached: bool = False
) -> list[str]:
    """Backbone names, optionally of one ``family``, containing ``text`` (any case),
    and only those whose pretrained weights are in the local caches (``cached``)."""
    fams = [family] if family else list(LISTERS)
    names = [n for f in fams for n in LISTERS[f]()]
    if text:
        names = [n for n in names if text.lower() in n.lower()]
    if cached:
        names = [n for n in names if _is_cached(n)]
    return names


def _is_cached(name: str) -> bool:
    spec = parse_name(name)
    try:
        return FAMILIES[spec.family].find(spec, []) is not None
    except Exception:  # a listed name the family cannot resolve: not usable offline
        return False
