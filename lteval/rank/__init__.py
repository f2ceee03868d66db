"""Scoring and ranking backbones; ``python -m lteval.rank`` runs the whole pipeline."""

from lteval.rank.results import RESULT_FILES, read_results, write_results
from lteval.rank.scoring import METRICS, BackboneScore, check_metric, rank_rows, score_features

__all__ = [
    "METRICS",
    "RESULT_FILES",
    "BackboneScore",
    "check_metric",
    "rank_rows",
    "read_results",
    "score_features",
    "write_results",
]
