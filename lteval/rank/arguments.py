"""The checks a ranking's and a study's arguments get before any work, shared by
``lteval.rank.run`` and ``lteval.study.run_study``; messages name parameters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lteval.constraints import check_params
from lteval.errors import UsageError, arg
from lteval.features import RunOptions, resolve_device
from lteval.rank.bootstrap import BOOTSTRAP_MIN
from lteval.rank.scoring import HEADS, check_heads, check_metric


def check_settings(by: str, heads: Sequence[str], dlsa: Mapping | None) -> list[str]:
    """Check the ranking settings before any work; return the heads to run."""
    check_metric(by)
    heads = check_heads(list(heads))
    method = by.split("_", 1)[0]
    if method in HEADS and method not in heads:
        shown = arg("heads", heads, cli=repr(",".join(heads) or "none"))
        raise UsageError(
            f"{arg('by', by)} ranks by the {method!r} head, which {shown} does not run; "
            f"add {method!r} to {arg('heads')} or choose another {arg('by')}"
        )
    if dlsa is not None and not isinstance(dlsa, Mapping):
        raise UsageError(f"{arg('dlsa')} must be a mapping of DLSA settings")
    if dlsa:
        from lteval.dlsa import from_dict

        try:
            from_dict(dict(dlsa))
        except (ValueError, TypeError) as e:
            raise UsageError(f"{arg('dlsa')}: {e}") from None
    return heads


def check_bootstrap(bootstrap: int) -> None:
    """UsageError unless ``bootstrap`` is 0 (no intervals) or at least ``BOOTSTRAP_MIN``."""
    check_params(bootstrap=bootstrap)
    if bootstrap and bootstrap < BOOTSTRAP_MIN:
        raise UsageError(
            f"{arg('bootstrap', bootstrap)} is too few for a 95% interval: give 0 (none) or at "
            f"least {BOOTSTRAP_MIN} (default 1000)"
        )


def check_names(**lists) -> None:
    """UsageError for a list parameter given as one string (which would be read as
    its characters)."""
    for name, value in lists.items():
        if isinstance(value, str):
            raise UsageError(f"{arg(name)} takes a list of names, got the string {value!r}")


def check_runtime(runtime: RunOptions) -> None:
    """UsageError naming the first field of ``runtime`` outside its range, or a
    device this machine does not have."""
    if not isinstance(runtime, RunOptions):
        raise UsageError(
            f"{arg('runtime')} must be a lteval.features.RunOptions, got {type(runtime).__name__}"
        )
    resolve_device(str(runtime.device))
    check_params(
        batch_size=runtime.batch_size,
        num_workers=runtime.num_workers,
        lock_timeout=runtime.lock_timeout,
        chunk_size=runtime.chunk_size,
    )
