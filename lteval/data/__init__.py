"""Datasets and seeded long-tailed splits (the leftmost layer: imports nothing of lteval)."""

from lteval.data.datasets import DATASETS, DatasetError, ImageDataset, load_dataset
from lteval.data.profiles import (
    Splits,
    carve_validation,
    long_tailed_counts,
    make_long_tailed_splits,
    per_class_holdout,
)

__all__ = [
    "DATASETS",
    "DatasetError",
    "ImageDataset",
    "Splits",
    "carve_validation",
    "per_class_holdout",
    "load_dataset",
    "long_tailed_counts",
    "make_long_tailed_splits",
]
