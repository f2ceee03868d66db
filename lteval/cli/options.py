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
from lteval.rank.arguments import check_bootstrap

LIBRARY_FLAGS = {
    "feature_dir": "--features",
    "backbones": "--backbones (or --backbones-file)",
    "num_workers": "--workers",
    "dlsa": "'dlsa' in --config",
    "panel": "--members",
}
"""The library parameters whose flag is not ``--`` + their name with dashes."""

OPTIONS = {
    flag[2:].replace("-", "_"): param
    for param, flag in LIBRARY_FLAGS.items()
    if flag.startswith("--") and " " not in flag
}
"""Option (dest) -> library parameter, where their names differ (``workers``:
``num_workers``)."""

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
    if getattr(args, "bootstrap", None) is not None:
        check_bootstrap(args.bootstrap)
    if getattr(args, "heads", None) is not None and not args.heads.strip(" ,"):
        raise UsageError("--heads is empty; name heads (comma-separated) or 'none'")
