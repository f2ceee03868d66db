"""Long-tailed classification heads on frozen features, and their metrics.

Pure array code: no images, no backbones.
"""

from lteval.heads.linear import (
    LinearConfig,
    LinearHead,
    Standardizer,
    TrainedHead,
    train_balanced_softmax,
)
from lteval.heads.logme import logme
from lteval.heads.metrics import (
    GROUPS,
    accuracy_report,
    balanced_accuracy,
    balanced_accuracy_se,
    shot_groups,
)
from lteval.heads.neighbours import KNN, NCM
from lteval.heads.transfer import (
    CLOSED_FORM,
    closed_form_scores,
    gbc,
    h_score,
    lda_posterior,
    lda_tail_posterior,
)
from lteval.heads.zoo import (
    CRT,
    LWS,
    BalancedSoftmaxProbe,
    LinearProbe,
    LogitAdjusted,
    TauNorm,
)

__all__ = [
    "CRT",
    "KNN",
    "LWS",
    "NCM",
    "LinearProbe",
    "LogitAdjusted",
    "TauNorm",
    "logme",
    "CLOSED_FORM",
    "closed_form_scores",
    "gbc",
    "h_score",
    "lda_posterior",
    "lda_tail_posterior",
    "GROUPS",
    "BalancedSoftmaxProbe",
    "LinearConfig",
    "LinearHead",
    "Standardizer",
    "TrainedHead",
    "accuracy_report",
    "balanced_accuracy",
    "balanced_accuracy_se",
    "shot_groups",
    "train_balanced_softmax",
]
