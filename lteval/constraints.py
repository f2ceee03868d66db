"""The type and range of every numeric run parameter, checked where the library is
entered (``lteval.rank.run``, ``lteval.study.run_study``, ``lteval.data.load_dataset``),
in the shape of
scikit-learn's ``_parameter_constraints``: one table, one check.

The command-line programs check the same table (``lteval.cli.options``), so the
library accepts exactly what the command line accepts. Messages name parameters
through ``lteval.errors.arg``: ``seed`` for a Python caller, ``--seed`` for a user
of the command line.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from lteval.errors import UsageError, arg

SEED_MAX = 2**32 - 1
"""The largest seed (numpy's legacy seeds and scikit-learn's random_state stop
there; derived seeds, from lteval.seeds, stay below 2**63)."""

VAL_FRACTION_MAX = 0.5
"""The largest val_fraction: validation must not take more of a class than train."""


@dataclass(frozen=True)
class Interval:
    """A number in [low, high] (``low_open``: (low, high]); ``integer``: whole ints
    only; ``what`` says what the number is, for the message."""

    what: str
    low: float | None = None
    high: float | None = None
    integer: bool = False
    low_open: bool = False


CONSTRAINTS: dict[str, Interval] = {
    "seed": Interval("a seed", 0, SEED_MAX, integer=True),
    "eval_per_class": Interval("images per class in the eval split", 1, integer=True),
    "batch_size": Interval("a batch size", 1, integer=True),
    "num_workers": Interval("a number of worker processes", 0, integer=True),
    "input_size": Interval("an input side in pixels", 16, integer=True),
    "bootstrap": Interval("a number of bootstrap replicates", 0, integer=True),
    "val_fraction": Interval(
        "the share of each train class carved out for validation, where every head "
        "chooses its settings",
        0,
        VAL_FRACTION_MAX,
        low_open=True,
    ),
    "imbalance_factor": Interval("largest / smallest class size; 1 keeps classes balanced", 1),
    "lock_timeout": Interval("seconds to wait for a cache lock; negative waits for ever"),
    "chunk_size": Interval("images per resumable extraction chunk", 1, integer=True),
}
"""Parameter name -> its constraint."""


def check_params(**values) -> None:
    """UsageError naming the first of ``values`` (parameter name -> value, None
    skipped) outside ``CONSTRAINTS``: a wrong type or a value out of range."""
    for name, value in values.items():
        if value is not None:
            _check(name, value, CONSTRAINTS[name])


def _check(name: str, value, c: Interval) -> None:
    boolean = isinstance(value, bool | np.bool_)  # True is an int to Python, not here
    if c.integer:
        if boolean or not isinstance(value, numbers.Integral):
            raise UsageError(
                f"{arg(name)} takes an integer ({c.what}), got {value!r} "
                f"({type(value).__name__}); write it as a whole number, e.g. {max(c.low, 1)}"
            )
    elif boolean or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise UsageError(f"{arg(name)} takes a finite number, got {value!r}")
    below = c.low is not None and (value <= c.low if c.low_open else value < c.low)
    above = c.high is not None and value > c.high
    if not below and not above:
        return
    if c.low is not None and c.high is not None and not c.integer:
        bounds = f"in {'(' if c.low_open else '['}{c.low}, {c.high}]"
    elif above:
        bounds = ("<= 2**32 - 1 = " if c.high == SEED_MAX else "<= ") + f"{c.high}"
    else:
        bounds = f">= {c.low}"
    raise UsageError(f"{arg(name)} must be {bounds} ({c.what}), got {value}")
