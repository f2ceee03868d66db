"""The protocol every backbone family follows, and the pieces the families share.

A family owns the part of a backbone name after ``family:``: it parses it, checks
it against its library, finds the weights on this machine, loads the model with the
transform that belongs to those weights, and says how to fetch weights that are
missing. It also declares the prefix its wrapper puts before the library's module
names (``--layer`` takes the library's names) and how its output is pooled.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from lteval.backbones.names import BackboneSpec
from lteval.errors import BackboneError, arg

LAYER_POOLING = "mean over space / tokens"
"""How a ``--layer`` output becomes (B, D), whatever the family (see pool_output)."""


class Family(ABC):
    """One family of backbone names (``timm:``, ``torchvision:``, ...).

    ``load(spec, path, input_size=, keep_classifier=)`` returns ``(model,
    transform)``: ``model`` maps a (B, 3, H, W) batch to (B, D) pooled pre-logit
    features (or to logits with ``keep_classifier``, for weight checks), and
    ``transform`` is the preprocessing that belongs to the weights, with its square
    input side replaced by ``input_size`` when given. Every load of a checkpoint is
    strict (see lteval.backbones.checkpoints).
    """

    name: ClassVar[str]
    """The word before ``:`` in a backbone name."""
    layer_prefix: ClassVar[str] = ""
    """What lteval's wrapper module puts before the library's module names."""
    pooling: ClassVar[str]
    """How the model's output becomes the (B, D) feature (enters the cache key)."""
    listable: ClassVar[bool] = True
    """Whether ``list_names`` can enumerate the family's names."""

    def parse(self, name: str, rest: str, random_init: bool) -> BackboneSpec:
        """The spec of ``name`` from ``rest``, the part after ``family:``; by default
        ``arch[/tag]``. Raises BackboneError for a name the family cannot take."""
        arch, _, tag = rest.partition("/")
        return BackboneSpec(name, self.name, arch, tag or None, random_init)

    @abstractmethod
    def check(self, spec: BackboneSpec) -> None:
        """Raise BackboneError (naming close matches) unless the library knows ``spec``."""

    @abstractmethod
    def find(self, spec: BackboneSpec, searched: list[str]) -> Path | None:
        """The local checkpoint of ``spec``'s pretrained weights, or None; every place
        looked at is appended to ``searched`` (for WeightsNotFoundError)."""

    @abstractmethod
    def load(
        self,
        spec: BackboneSpec,
        path: Path | None,
        *,
        input_size: int | None = None,
        keep_classifier: bool = False,
    ) -> tuple[nn.Module, Callable]:
        """``(model, transform)`` with the weights of ``path`` (random ones when None)."""

    @abstractmethod
    def fetch_hint(self, spec: BackboneSpec) -> str:
        """A command that downloads ``spec``'s weights on a connected machine."""

    def list_names(self) -> list[str]:
        """Every backbone name of the family with pretrained weights ([] when the family
        has no list, as ``file:``)."""
        return []


def close_matches(word: str, options: list[str]) -> str:
    """`` Closest matches: a, b.`` for ``word`` among ``options``, or ``""``."""
    near = difflib.get_close_matches(word, options, n=5, cutoff=0.5)
    return f" Closest matches: {', '.join(near)}." if near else ""


def fixed_size(name: str, native: int | None, input_size: int | None) -> None:
    """Raise BackboneError when a model with fixed position embeddings (native side
    ``native``) is asked for another ``input_size``."""
    if input_size is not None and native is not None and input_size != native:
        raise BackboneError(
            f"{name} takes only its native input size {native}x{native} (fixed position "
            f"embeddings); drop {arg('input_size', input_size)} for it"
        )


def pool_output(out) -> torch.Tensor:
    """A module output as (B, D): 4-D (NCHW) averaged over H, W; 3-D (B, tokens, C)
    averaged over tokens; a tuple or list contributes its first element."""
    out = out[0] if isinstance(out, tuple | list) else out
    if out.ndim == 4:
        return out.mean(dim=(2, 3))
    if out.ndim == 3:
        return out.mean(dim=1)
    return out.flatten(1)
