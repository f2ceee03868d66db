"""Scoring and ranking backbones; ``lteval.rank.run`` runs the whole pipeline (the
validation study of the scores is ``lteval.study``)."""

from lteval.rank.bootstrap import validate_ranking
from lteval.rank.pipeline import RankResult, run, run_features
from lteval.rank.results import RESULT_FILES, read_results, reading_runs, write_results
from lteval.rank.row import Evidence, Row, Status
from lteval.rank.schema import BOOTSTRAPPED, METHODS, METRICS
from lteval.rank.scoring import (
    HEADS,
    BackboneScore,
    check_heads,
    check_metric,
    failed,
    rank_rows,
    score_features,
)

__all__ = [
    "BOOTSTRAPPED",
    "HEADS",
    "METHODS",
    "METRICS",
    "RESULT_FILES",
    "BackboneScore",
    "Evidence",
    "RankResult",
    "Row",
    "Status",
    "check_heads",
    "check_metric",
    "failed",
    "rank_rows",
    "read_results",
    "reading_runs",
    "run",
    "run_features",
    "score_features",
    "validate_ranking",
    "write_results",
]
