"""Every random stream in lteval, derived one way from a seed and the stream's purpose.

A seed given by a user (``--seed``, ``random_state``) is never fed to a generator
as it is, except by the dataset draw (``lteval.data``), whose published splits it
names. Every other stream is seeded with ``derive_seed(seed, *purpose)``: numpy's
``SeedSequence`` with the seed as entropy and the purpose, hashed to a fixed width,
as its spawn key. Two purposes give independent streams, nearby seeds give
unrelated ones, and a sub-stream derives from its parent's seed in turn, e.g. DLSA's
``derive_seed(derive_seed(seed, "stage", 1), "flow", 3)``. The purposes are listed
in ``docs/method.md`` ("Seeds").

``check_random_state`` checks a seed; ``seeded_torch`` runs code that draws from
torch's global generator (``nn.Linear``'s initialisation) under a derived seed and
restores the generator after. torch is imported only by the functions that use it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import numbers
from collections.abc import Iterator

import numpy as np

SEED_BITS = 63
"""A derived seed is below 2**63, so that it fits int64 (torch's manual_seed, h5,
JSON readers) as well as numpy's generators."""


def check_random_state(value, name: str = "random_state") -> int:
    """``value`` as an int seed; ValueError naming ``name`` unless a non-negative integer.

    Unlike scikit-learn's ``check_random_state``, None and ``RandomState`` instances
    are refused: every lteval estimator is seeded, so that a ranking is reproducible.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer seed, got {value!r}")
    return int(value)


def _purpose_key(purpose: tuple) -> tuple[int, ...]:
    """Four 32-bit words naming ``purpose`` (str and int parts; "3" and 3 differ):
    a fixed width, so that no two (seed, purpose) pairs assemble the same entropy."""
    parts = []
    for p in purpose:
        if isinstance(p, str):
            parts.append(p)
        elif isinstance(p, numbers.Integral) and not isinstance(p, bool):
            parts.append(int(p))
        else:
            raise TypeError(f"a seed purpose is made of str and int parts, got {p!r}")
    digest = hashlib.sha256(json.dumps(parts).encode()).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


def derive_seed(seed: int, *purpose: str | int) -> int:
    """The seed, in [0, 2**63), of the stream ``purpose`` under ``seed``.

    ``seed``: a non-negative int (a user's seed or a derived one). ``purpose``: str
    and int parts naming the stream, e.g. ``("flow", 3)``. With no purpose, ``seed``
    itself (the root stream). Deterministic on every machine and numpy version that
    keeps ``SeedSequence``'s documented algorithm.
    """
    seed = check_random_state(seed, "seed")
    if not purpose:
        return seed
    seq = np.random.SeedSequence(seed, spawn_key=_purpose_key(purpose))
    return int(seq.generate_state(1, np.uint64)[0]) >> (64 - SEED_BITS)


def derived_rng(seed: int, *purpose: str | int) -> np.random.Generator:
    """A numpy Generator for the stream ``purpose`` under ``seed``."""
    return np.random.default_rng(derive_seed(seed, *purpose))


def torch_generator(seed: int, *purpose: str | int):
    """A CPU ``torch.Generator`` for the stream ``purpose`` under ``seed``."""
    import torch

    return torch.Generator().manual_seed(derive_seed(seed, *purpose))


@contextlib.contextmanager
def seeded_torch(seed: int, *purpose: str | int) -> Iterator[None]:
    """Run the enclosed code with torch's global CPU generator seeded for the
    stream ``purpose`` under ``seed``, restoring its previous state on exit.

    Accelerator generators are neither seeded nor saved: the modules are built on
    the CPU and moved afterwards, and no training step draws from a global generator.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(derive_seed(seed, *purpose))
        yield
