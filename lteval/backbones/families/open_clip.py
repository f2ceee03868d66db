"""The ``open_clip:`` family: ``open_clip:<arch>/<pretrained tag>``.

Weights are looked up where open_clip's own loader keeps them: the Hugging Face hub
cache for hub-hosted tags, else the URL's file name in TORCH_HOME's checkpoints or
``~/.cache/clip``. The model is the image tower (``visual``) of the CLIP model:
its output, the projected image embedding, is the feature.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from lteval.backbones.families.base import Family, close_matches, fixed_size
from lteval.backbones.names import BackboneSpec
from lteval.backbones.weights import find_in_hf_cache, find_url_checkpoint
from lteval.errors import BackboneError, first_line

HF_FILES = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
"""The checkpoint names open_clip reads from a hub repository that names none."""


class _ClipImageEncoder(nn.Module):
    def __init__(self, visual: nn.Module):
        super().__init__()
        self.visual = visual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x)


class OpenClipFamily(Family):
    """open_clip architectures with their pretrained tags (image encoder only)."""

    name = "open_clip"
    layer_prefix = "visual."  # _ClipImageEncoder.visual
    pooling = "open_clip image embedding (the image tower's projected output)"

    def check(self, spec: BackboneSpec) -> None:
        import open_clip

        if spec.arch not in open_clip.list_models():
            raise BackboneError(
                f"unknown open_clip architecture {spec.arch!r} in {spec.name!r}."
                + close_matches(spec.arch, open_clip.list_models())
            )
        tags = open_clip.list_pretrained_tags_by_model(spec.arch)
        if spec.tag is None or spec.tag not in tags:
            raise BackboneError(
                f"open_clip needs a known pretrained tag: write 'open_clip:{spec.arch}/TAG' "
                f"with TAG one of {tags}"
            )

    def find(self, spec: BackboneSpec, searched: list[str]) -> Path | None:
        import open_clip

        cfg = open_clip.get_pretrained_cfg(spec.arch, spec.tag)
        found = None
        if cfg.get("hf_hub"):  # "org/repo/" (default file names) or "org/repo/file"
            parts = cfg["hf_hub"].rstrip("/").split("/")
            found = find_in_hf_cache("/".join(parts[:2]), parts[2:] or HF_FILES, searched)
        clip_dir = Path.home() / ".cache" / "clip"
        return found or find_url_checkpoint(cfg.get("url"), searched, extra_dirs=[clip_dir])

    def load(
        self,
        spec: BackboneSpec,
        path: Path | None,
        *,
        input_size: int | None = None,
        keep_classifier: bool = False,
    ) -> tuple[nn.Module, Callable]:
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
        fixed_size(spec.name, native, input_size)
        return _ClipImageEncoder(model.visual), preprocess

    def fetch_hint(self, spec: BackboneSpec) -> str:
        return (
            f'python -c "import open_clip; open_clip.create_model_and_transforms('
            f"'{spec.arch}', pretrained='{spec.tag}')\""
        )

    def list_names(self) -> list[str]:
        import open_clip

        return [f"open_clip:{arch}/{tag}" for arch, tag in open_clip.list_pretrained()]
