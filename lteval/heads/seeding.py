"""Local randomness for the estimators: a checked ``random_state`` and torch
initialisation that never leaves torch's global generator changed.

``nn.Linear`` and ``nn.init`` draw from torch's global CPU generator. The estimators
of ``lteval.heads`` and ``lteval.dlsa`` build their modules inside ``seeded_torch``:
the global generator is seeded for the enclosed code only and restored on exit, so a
fit is reproducible from its ``random_state`` alone and leaves the caller's torch
(and numpy) random state as it found it. Everything else draws from local
``torch.Generator`` / ``np.random.default_rng`` objects seeded from ``random_state``.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator

import torch


def check_random_state(value, name: str = "random_state") -> int:
    """``value`` as an int seed; ValueError naming ``name`` unless a non-negative integer.

    Unlike scikit-learn's ``check_random_state``, None and ``RandomState`` instances
    are refused: every lteval estimator is seeded, so that a ranking is reproducible.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer seed, got {value!r}")
    return int(value)


@contextlib.contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Run the enclosed code with torch's global CPU generator seeded with ``seed``
    (as ``torch.manual_seed`` would seed it), restoring its previous state on exit.

    Accelerator generators are neither seeded nor saved: the modules are built on
    the CPU and moved afterwards, and no training step draws from a global generator.
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield
