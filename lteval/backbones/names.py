"""Backbone names: ``[random:]family:architecture[/tag]``.

Families: ``timm:<model>[.<tag>]``, ``torchvision:<model>[/<WEIGHTS enum member>]``,
``open_clip:<arch>/<pretrained tag>``, ``file:<path>[#<timm arch>]``.

A ``random:`` prefix names a *control*: the same architecture and transform, run
with seeded random weights on purpose (e.g. ``random:torchvision:mobilenet_v2``).
It shows what a backbone's features owe to pretraining; no weights are looked up.
"""

from __future__ import annotations

from dataclasses import dataclass

from lteval.errors import BackboneError

FAMILY_NAMES = ("file", "open_clip", "timm", "torchvision")
RANDOM_PREFIX = "random:"


@dataclass(frozen=True)
class BackboneSpec:
    """A parsed backbone name."""

    name: str
    family: str
    arch: str
    tag: str | None
    random_init: bool = False  # a ``random:`` control: seeded random weights on purpose


def parse_name(name: str) -> BackboneSpec:
    """Split ``[random:]family:arch[/tag]`` (timm also accepts ``arch.tag``) and check
    the family. Raises BackboneError with the expected form."""
    random_init = name.startswith(RANDOM_PREFIX)
    body = name[len(RANDOM_PREFIX) :] if random_init else name
    family, sep, rest = body.partition(":")
    if not sep or not rest:
        raise BackboneError(
            f"backbone name {name!r} must look like FAMILY:MODEL, with FAMILY one of "
            f"{list(FAMILY_NAMES)} (e.g. timm:resnet18, open_clip:ViT-B-32/openai; "
            f"'random:' before it for a random-init control)"
        )
    if family not in FAMILY_NAMES:
        raise BackboneError(
            f"unknown backbone family {family!r} in {name!r}; choose one of {list(FAMILY_NAMES)}"
        )
    if family == "file":  # the path may hold '/' and '.': only '#<arch>' is special
        if random_init:
            raise BackboneError(
                f"{name!r}: a random control needs an architecture, not a file; write "
                "random:timm:<model> or random:torchvision:<model>"
            )
        path, _, tag = rest.partition("#")
        return BackboneSpec(name, family, path, tag or None)
    arch, _, tag = rest.partition("/")
    if family == "timm" and "." in arch and not tag:
        arch, _, tag = arch.partition(".")
    return BackboneSpec(name, family, arch, tag or None, random_init)
