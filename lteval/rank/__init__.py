"""Scoring and ranking backbones; ``lteval.rank.run`` runs the whole pipeline."""

from lteval.rank.pipeline import RankResult, run
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
from lteval.rank.validation import StudyResult, run_study
from lteval.rank.validity import validate_ranking

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
    "StudyResult",
    "check_heads",
    "check_metric",
    "failed",
    "rank_rows",
    "read_results",
    "reading_runs",
    "run",
    "run_study",
    "score_features",
    "validate_ranking",
    "write_results",
]
