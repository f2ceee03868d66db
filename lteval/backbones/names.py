"""Backbone names: ``[random:]family:architecture[/tag]``.

Families: ``timm:<model>[.<tag>]``, ``torchvision:<model>[/<WEIGHTS enum member>]``,
``open_clip:<arch>/<pretrained tag>``, ``file:<path>[#<timm arch>]``. This module
splits off the ``random:`` prefix and the family; each family parses the rest of
the name itself (``Family.parse`` in lteval.backbones.families), and
``lteval.backbones.families.parse_name`` puts the two together.

A ``random:`` prefix names a *control*: the same architecture and transform, run
with seeded random weights on purpose (e.g. ``random:torchvision:mobilenet_v2``).
It shows what a backbone's features owe to pretraining; no weights are looked up.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from lteval.errors import BackboneError

RANDOM_PREFIX = "random:"


@dataclass(frozen=True)
class BackboneSpec:
    """A parsed backbone name."""

    name: str
    family: str
    arch: str
    tag: str | None
    random_init: bool = False  # a ``random:`` control: seeded random weights on purpose


def split_name(name: str, families: Collection[str]) -> tuple[str, str, bool]:
    """Split ``[random:]family:rest`` and check the family against ``families``.

    Returns ``(family, rest, random_init)``. Raises BackboneError with the expected
    form when there is no ``family:`` or the family is not one of ``families``.
    """
    known = sorted(families)
    random_init = name.startswith(RANDOM_PREFIX)
    body = name[len(RANDOM_PREFIX) :] if random_init else name
    family, sep, rest = body.partition(":")
    if not sep or not rest:
        raise BackboneError(
            f"backbone name {name!r} must look like FAMILY:MODEL, with FAMILY one of "
            f"{known} (e.g. timm:resnet18, open_clip:ViT-B-32/openai; "
            f"'random:' before it for a random-init control)"
        )
    if family not in families:
        raise BackboneError(
            f"unknown backbone family {family!r} in {name!r}; choose one of {known}"
        )
    return family, rest, random_init


def read_name_list(text: str) -> list[str]:
    """Backbone names listed one per line in ``text``: a ``#`` at the start of a line
    or after a space starts a comment (``file:m.pt#arch`` is one name)."""
    lines = (re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]
