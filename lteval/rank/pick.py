"""What to pick: the answer a ranking owes its user, decided from the results' fields.

"Which backbone for my tail classes?" A user deploys the head that does best on
validation, so the answer reads ``pick_few``: the few-shot accuracy on eval of each
backbone's head chosen on validation balanced accuracy (``pick_head``; never chosen
on eval). The best backbone by it, the backbones whose paired bootstrap interval of
the difference with it covers 0 (``validity["pick_pairs"]``), and whether the
ranking's first backbone is among them: the ranking is kept by ``--by``
(separability by default), and this says where it agrees with the tail accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from lteval.rank.bootstrap import PICK_METRIC
from lteval.rank.row import is_ok

SHOWN = 5
"""Tied backbones named in the block; the rest are counted (C and backbones may be many)."""


def _finite(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _entry(r: Mapping) -> dict:
    return {
        "backbone": r["backbone"],
        PICK_METRIC: r[PICK_METRIC],
        "lo": r.get(f"{PICK_METRIC}_lo"),
        "hi": r.get(f"{PICK_METRIC}_hi"),
        "pick_head": r.get("pick_head"),
        "control": bool(r.get("control")),
    }


def what_to_pick(rows: Sequence[Mapping], validity: Mapping, by: str) -> dict:
    """The "what to pick" record of ranked ``rows`` (best first by ``by``) and their
    ``validity`` (``lteval.rank.validate_ranking``).

    Returns ``{"defined": False, "reason"}`` when no backbone has a head chosen on
    validation; otherwise ``{"defined": True, "metric", "best", "tied" (None without
    a bootstrap), "tied_more" (tied backbones beyond ``SHOWN``), "ranked_by",
    "first", "first_agrees", "kendall_tau", "kendall_lo", "kendall_hi",
    "n_backbones"}``, each backbone as ``{"backbone", "pick_few", "lo", "hi",
    "pick_head", "control"}``. ``first_agrees``: the ranking's first backbone is the
    best or tied with it.
    """
    ok = [r for r in rows if is_ok(r) and _finite(r.get(PICK_METRIC))]
    if not ok:
        return {
            "defined": False,
            "reason": "no backbone has a head chosen on validation (no validation "
            "split, or no backbone was scored)",
        }
    order = {r["backbone"]: i for i, r in enumerate(rows)}
    best = max(ok, key=lambda r: (r[PICK_METRIC], -order[r["backbone"]]))
    name = best["backbone"]
    pairs = [p for p in validity.get("pick_pairs", []) if name in (p["a"], p["b"])]
    by_name = {r["backbone"]: r for r in ok}
    tied = None
    if pairs or len(ok) == 1:
        names = [p["b"] if p["a"] == name else p["a"] for p in pairs if p["tie"]]
        tied = sorted((by_name[n] for n in names if n in by_name), key=lambda r: -r[PICK_METRIC])
    first = next(r for r in rows if is_ok(r))
    corr = next((c for c in validity.get("correlations", []) if c["metric"] == PICK_METRIC), {})
    near = {name} | {r["backbone"] for r in tied or []}
    return {
        "defined": True,
        "metric": PICK_METRIC,
        "best": _entry(best),
        "tied": None if tied is None else [_entry(r) for r in tied[:SHOWN]],
        "tied_more": 0 if tied is None else max(0, len(tied) - SHOWN),
        "ranked_by": by,
        "first": {
            "backbone": first["backbone"],
            by: first.get(by),
            PICK_METRIC: first.get(PICK_METRIC),
            "pick_head": first.get("pick_head"),
        },
        "first_agrees": None if tied is None else first["backbone"] in near,
        "kendall_tau": corr.get("kendall_tau"),
        "kendall_lo": corr.get("kendall_lo"),
        "kendall_hi": corr.get("kendall_hi"),
        "n_backbones": len(ok),
    }
