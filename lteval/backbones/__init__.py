"""Pretrained backbones by name, each with the transform that belongs to its weights."""

from lteval.backbones.families import FAMILIES
from lteval.backbones.names import BackboneSpec, parse_name
from lteval.backbones.registry import Backbone, file_sha256, load_backbone, resolve_weights
from lteval.backbones.weights import BackboneError, WeightsNotFoundError

__all__ = [
    "FAMILIES",
    "Backbone",
    "BackboneError",
    "BackboneSpec",
    "WeightsNotFoundError",
    "file_sha256",
    "load_backbone",
    "parse_name",
    "resolve_weights",
]
