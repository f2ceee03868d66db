"""Type and range checks of the programs' numeric options, once, at the boundary.

Values reach ``args`` from the command line (argparse has converted them) or from a
``--config`` YAML file (where ``1e3`` is a string, ``true`` a bool and ``1.5`` a
float). Every check raises UsageError naming the option, the bad value and what it
takes, before any data is read.
"""

from __future__ import annotations

import math
from argparse import Namespace

from lteval.errors import UsageError
from lteval.rank.validity import BOOTSTRAP_MIN

SEED_MAX = 2**32 - 1
"""The largest --seed (numpy's legacy seeds and scikit-learn's random_state stop
there; derived seeds such as the flows' seed + 1,000,003 r must stay in int64)."""

VAL_FRACTION_MAX = 0.5
"""The largest --val-fraction: validation must not take more of a class than train."""

INTEGERS = {
    # option: (smallest allowed value, what it is)
    "seed": (0, "a seed"),
    "eval_per_class": (1, "images per class in the eval split"),
    "batch_size": (1, "a batch size"),
    "workers": (0, "a number of worker processes"),
    "input_size": (16, "an input side in pixels"),
    "bootstrap": (0, "a number of bootstrap replicates"),
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _integer(name: str, value, lo: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(
            f"{_flag(name)} takes an integer ({what}), got {value!r} "
            f"({type(value).__name__}); write it as a whole number, e.g. {max(lo, 1)}"
        )
    if value < lo:
        raise UsageError(f"{_flag(name)} must be >= {lo} ({what}), got {value}")


def _number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UsageError(f"{_flag(name)} takes a finite number, got {value!r}")
    return float(value)


PATHS = ("data_root", "features", "backbones_file", "out", "export_h5", "results_dir")
"""Options that name a file or folder (checked not to be empty)."""


def check_options(args: Namespace) -> None:
    """Raise UsageError for the first option of ``args`` with a bad type or range.

    Options a program does not have, and options left at None (dataset defaults),
    are skipped.
    """
    for name in PATHS:  # Path("") is the current folder: never what was meant
        value = getattr(args, name, None)
        if isinstance(value, str) and not value.strip():
            raise UsageError(f"--{name.replace('_', '-')} is empty; name a path or leave it out")
    for name, (lo, what) in INTEGERS.items():
        value = getattr(args, name, None)
        if value is not None:
            _integer(name, value, lo, what)
    if getattr(args, "seed", None) is not None and args.seed > SEED_MAX:
        raise UsageError(f"--seed must be <= 2**32 - 1 = {SEED_MAX}, got {args.seed}")
    if getattr(args, "bootstrap", None) and args.bootstrap < BOOTSTRAP_MIN:
        raise UsageError(
            f"--bootstrap {args.bootstrap} is too few for a 95% interval: give 0 (none) or "
            f"at least {BOOTSTRAP_MIN} (default 1000)"
        )
    if getattr(args, "heads", None) is not None and not args.heads.strip(" ,"):
        raise UsageError("--heads is empty; name heads (comma-separated) or 'none'")
    if getattr(args, "val_fraction", None) is not None:
        v = _number("val_fraction", args.val_fraction)
        if not 0 < v <= VAL_FRACTION_MAX:
            raise UsageError(
                f"--val-fraction must be in (0, {VAL_FRACTION_MAX}] (the share of each train "
                f"class carved out for validation, where every head chooses its settings), "
                f"got {args.val_fraction}"
            )
    if getattr(args, "lock_timeout", None) is not None:
        _number("lock_timeout", args.lock_timeout)
    if getattr(args, "imbalance_factor", None) is not None:
        v = _number("imbalance_factor", args.imbalance_factor)
        if v < 1:
            raise UsageError(
                f"--imbalance-factor must be >= 1 (largest / smallest class size; 1 keeps "
                f"classes balanced), got {args.imbalance_factor}"
            )
