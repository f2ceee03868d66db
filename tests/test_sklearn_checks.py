"""scikit-learn's own estimator checks, on each distinct estimator class and on
DLSA (tiny settings).

``BalancedSoftmaxProbe`` is ``LinearProbe``'s implementation with one switch (the
Balanced-Softmax loss): it is checked through ``LinearProbe``, and
``test_the_linear_variants_share_linear_probe`` proves that it shares every method
(as ``CRT`` does but for its ``__init__`` and sampling; having its own ``__init__``,
``CRT`` is checked too). Every check is expected to pass;
``EXPECTED_FAILURES`` names any that cannot, with the reason, and is empty when none
fails.
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
    LogitAdjusted(**FAST),
    CRT(**FAST),  # its own written __init__ (no sampling): checked as a class of its own
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


def test_the_linear_variants_share_linear_probe():
    """What the checks of LinearProbe cover for BalancedSoftmaxProbe and CRT: every
    method is LinearProbe's, except the one switch each sets."""
    import inspect

    own = {
        BalancedSoftmaxProbe: {"balanced_softmax"},
        CRT: {"__init__", "_settings"},  # no sampling parameter; class-balanced always
    }
    for cls, switch in own.items():
        assert cls.__mro__[1] is LinearProbe
        defined = {
            n
            for n in vars(cls)
            if n == "__init__" or not (n.startswith("__") or n.endswith("_request"))
        }  # scikit-learn adds set_fit_request to every class itself
        assert defined == switch, cls.__name__
        for name, member in inspect.getmembers(LinearProbe, inspect.isfunction):
            if name not in switch and not name.endswith("_request"):
                assert getattr(cls, name) is member, (cls.__name__, name)
    assert BalancedSoftmaxProbe.balanced_softmax and not LinearProbe.balanced_softmax
    assert CRT(**FAST)._settings().sampling == "class-balanced"
    assert set(CRT._get_param_names()) == set(LinearProbe._get_param_names()) - {"sampling"}
