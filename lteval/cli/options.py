"""Type and range checks of the programs' options, once, at the boundary.

Values reach ``args`` from the command line (argparse has converted them) or from a
``--config`` YAML file (where ``1e3`` is a string, ``true`` a bool and ``1.5`` a
float). The numeric ones are checked against the library's own table
(``lteval.constraints``), so a program accepts exactly what the library does; every
check raises UsageError naming the option, the bad value and what it takes, before
any data is read.
"""

from __future__ import annotations

from argparse import Namespace

from lteval.constraints import CONSTRAINTS, check_params
from lteval.errors import UsageError
from lteval.rank.validity import BOOTSTRAP_MIN

OPTIONS = {"workers": "num_workers"}
"""Options whose library parameter has another name."""

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
    given = {OPTIONS.get(k, k): v for k, v in vars(args).items()}
    check_params(**{k: given[k] for k in CONSTRAINTS if k in given})
    if getattr(args, "bootstrap", None) and args.bootstrap < BOOTSTRAP_MIN:
        raise UsageError(
            f"--bootstrap {args.bootstrap} is too few for a 95% interval: give 0 (none) or "
            f"at least {BOOTSTRAP_MIN} (default 1000)"
        )
    if getattr(args, "heads", None) is not None and not args.heads.strip(" ,"):
        raise UsageError("--heads is empty; name heads (comma-separated) or 'none'")
