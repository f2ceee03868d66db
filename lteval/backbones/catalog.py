"""Every backbone name that can be given, per family, and which are cached locally."""

from __future__ import annotations

from collections.abc import Callable

from lteval.backbones.families import FAMILIES, parse_name

LISTERS: dict[str, Callable[[], list[str]]] = {
    name: family.list_names for name, family in FAMILIES.items() if family.listable
}
"""Each family that can enumerate its names (all but ``file``): its lister."""


def list_names(
    family: str | None = None, text: str | None = None, cached: bool = False
) -> list[str]:
    """Backbone names, optionally of one ``family``, containing ``text`` (any case),
    and only those whose pretrained weights are in the local caches (``cached``).
    Returns them in each family's own order, families in LISTERS' order."""
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
