"""scikit-learn's own estimator checks, on every head and on DLSA (tiny settings).

Every check is expected to pass; ``EXPECTED_FAILURES`` names any that cannot, with
the reason, and is empty when none fails.
"""

from sklearn.utils.estimator_checks import parametrize_with_checks

from lteval.dlsa import DLSA
from lteval.heads import (
    CRT,
    KNN,
    LWS,
    NCM,
    BalancedSoftmaxProbe,
    LinearConfig,
    LinearProbe,
    LogitAdjusted,
    TauNorm,
)

FAST = dict(epochs=30, lr_grid=None)
ESTIMATORS = [
    LinearProbe(**FAST),
    BalancedSoftmaxProbe(**FAST),
    LogitAdjusted(**FAST),
    CRT(**FAST),
    TauNorm(**FAST),
    LWS(**FAST),
    NCM(),
    KNN(),
    DLSA(
        num_clusters=4,
        num_stages=2,
        flow_epochs=2,
        flow_seeds=2,
        flow_batch_size=32,
        hidden=8,
        classifier=LinearConfig(**FAST),
    ),
]

EXPECTED_FAILURES: dict[str, dict[str, str]] = {}
"""{estimator class name: {check name: why it is expected to fail}}."""


def _expected(est) -> dict[str, str]:
    return EXPECTED_FAILURES.get(type(est).__name__, {})


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected)
def test_scikit_learn_contract(estimator, check):
    check(estimator)
