"""Scoring and ranking backbones; ``python -m lteval.rank`` runs the whole pipeline."""

from lteval.rank.results import RESULT_FILES, read_results, write_results
from lteval.rank.scoring import (
    BOOTSTRAPPED,
    HEADS,
    METHODS,
    METRICS,
    BackboneScore,
    check_heads,
    check_metric,
    failed,
    rank_rows,
    score_features,
)
from lteval.rank.validity import validate_ranking

__all__ = [
    "BOOTSTRAPPED",
    "HEADS",
    "METHODS",
    "METRICS",
    "RESULT_FILES",
    "BackboneScore",
    "check_heads",
    "check_metric",
    "failed",
    "rank_rows",
    "read_results",
    "score_features",
    "validate_ranking",
    "write_results",
]
