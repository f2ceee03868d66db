"""Pretrained backbones by name, each with the transform that belongs to its weights."""

from lteval.atomic import file_sha256
from lteval.backbones.families import FAMILIES, Family, parse_name
from lteval.backbones.names import BackboneSpec, read_name_list
from lteval.backbones.registry import Backbone, load_backbone, resolve_weights
from lteval.backbones.weights import BackboneError, WeightsKind, WeightsNotFoundError

__all__ = [
    "FAMILIES",
    "Backbone",
    "BackboneError",
    "BackboneSpec",
    "Family",
    "WeightsKind",
    "WeightsNotFoundError",
    "file_sha256",
    "load_backbone",
    "parse_name",
    "read_name_list",
    "resolve_weights",
]
