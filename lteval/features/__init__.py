"""Feature extraction into an atomic, resumable on-disk cache; the DLSA h5 format."""

from lteval.features.cache import cache_key, cache_root, entry_lock, load_entry, write_entry
from lteval.features.extract import (
    SPLITS,
    FeatureOptions,
    RunOptions,
    extract,
    resolve_device,
    versions,
)
from lteval.features.h5io import FeatureFileError, read_feature_dir, read_h5, write_h5
from lteval.features.job import ExtractionJob, get_features
from lteval.features.runner import backbone_features, check_backbones

__all__ = [
    "SPLITS",
    "backbone_features",
    "check_backbones",
    "ExtractionJob",
    "FeatureFileError",
    "FeatureOptions",
    "RunOptions",
    "cache_key",
    "cache_root",
    "entry_lock",
    "extract",
    "get_features",
    "load_entry",
    "read_feature_dir",
    "read_h5",
    "resolve_device",
    "versions",
    "write_entry",
    "write_h5",
]
