"""Pretrained backbones by name, each with the transform that belongs to its weights."""

from lteval.backbones.registry import (
    FAMILIES,
    Backbone,
    BackboneSpec,
    load_backbone,
    parse_name,
    resolve_weights,
)
from lteval.backbones.weights import BackboneError, WeightsNotFoundError

__all__ = [
    "FAMILIES",
    "Backbone",
    "BackboneError",
    "BackboneSpec",
    "WeightsNotFoundError",
    "load_backbone",
    "parse_name",
    "resolve_weights",
]
