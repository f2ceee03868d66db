"""DLSA: progressive Gaussian-mixture-flow filtering on frozen features.

Pure array code (numpy in, numpy out; torch inside). See ``docs/method.md`` for
the method, the ``paper`` preset and where lteval's defaults differ from it, and
``lteval.dlsa.model`` for the choices the method leaves open. ``DLSA`` is a
scikit-learn estimator; ``diagnostics(model, X, y)`` reports its stages and the
separability score on an evaluation set.
"""

from lteval.dlsa.config import PRESETS, DLSAConfig, from_dict, from_yaml, preset, scaled_for
from lteval.dlsa.diagnostics import diagnostics
from lteval.dlsa.flow import GMF, MADE, MAF, BatchNormBijector, component_log_prob, fixed_means
from lteval.dlsa.model import DLSA
from lteval.dlsa.separability import imbalance, many_few_auroc, separability_score, somers_d
from lteval.dlsa.train import PairSampler, class_weights, fit_stage

__all__ = [
    "PRESETS",
    "from_dict",
    "from_yaml",
    "preset",
    "DLSA",
    "GMF",
    "MADE",
    "MAF",
    "BatchNormBijector",
    "DLSAConfig",
    "diagnostics",
    "PairSampler",
    "class_weights",
    "component_log_prob",
    "fit_stage",
    "fixed_means",
    "imbalance",
    "many_few_auroc",
    "scaled_for",
    "separability_score",
    "somers_d",
]
