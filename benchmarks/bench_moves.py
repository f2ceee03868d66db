"""Did a change that moves results keep every move inside the earlier intervals?

    python benchmarks/bench_moves.py --before OLD --after NEW --out moves.json

OLD and NEW are ``reports/`` folders (or copies) holding any of ``demo/results.json``
(``lteval rank``), ``benchmarks/stability.json`` (``make benchmark-stability``) and
``validate/validate.json`` (``make validate``). For every number that OLD gives with
a 95% interval (a backbone's metric and its ``_lo`` / ``_hi``; the stability
baseline's separability; a study tau and its interval, per panel, dataset, score
and truth), it records NEW's value, the move, and whether NEW lies inside OLD's
interval. It also says whether the ranking's order changed outside a tie. The JSON
is machine-readable; the summary is printed. Exit 0 even when moves fall outside:
this measures, the closing note judges.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from lteval.atomic import write_text


def _inside(value, lo, hi) -> bool | None:
    """None when any is missing or NaN (an undefined tau, e.g. a constant score)."""
    if any(v is None or math.isnan(v) for v in (value, lo, hi)):
        return None
    return lo <= value <= hi


def _row(what: str, before: float, after: float, lo: float, hi: float) -> dict:
    return {
        "what": what,
        "before": before,
        "after": after,
        "move": None if after is None or before is None else after - before,
        "lo": lo,
        "hi": hi,
        "inside": _inside(after, lo, hi),
    }


def demo_moves(before: dict, after: dict) -> list[dict]:
    """Every backbone metric with an interval in ``before`` (results.json)."""
    new = {b["backbone"]: b for b in after["backbones"]}
    rows = []
    for b in before["backbones"]:
        a = new.get(b["backbone"], {})
        for k in sorted(k[:-3] for k in b if k.endswith("_lo") and k[:-3] + "_hi" in b):
            if b.get(k) is not None:
                what = f"{b['backbone']} {k}"
                rows.append(_row(what, b[k], a.get(k), b[k + "_lo"], b[k + "_hi"]))
    return rows


def demo_order(before: dict, after: dict) -> dict:
    """The ranking by ``ranked_by`` before and after, and the pairs whose order
    flipped although ``before``'s bootstrap did not call them tied."""
    by = before["run"]["ranked_by"]
    order = [b["backbone"] for b in sorted(before["backbones"], key=lambda b: b["rank"])]
    order_after = [b["backbone"] for b in sorted(after["backbones"], key=lambda b: b["rank"])]
    tied = {
        frozenset((p["a"], p["b"]))
        for p in before["validity"]["pairs"]
        if p["metric"] == by and p["tie"]
    }
    pos = {n: i for i, n in enumerate(order_after)}
    flips = [
        [x, y]
        for i, x in enumerate(order)
        for y in order[i + 1 :]
        if x in pos and y in pos and pos[x] > pos[y] and frozenset((x, y)) not in tied
    ]
    return {"ranked_by": by, "before": order, "after": order_after, "flips_outside_a_tie": flips}


def stability_moves(before: dict, after: dict) -> list[dict]:
    new = {r["backbone"]: r for r in after["ensemble"]["table"]}
    return [
        _row(
            f"{r['backbone']} separability (stability baseline)",
            r["baseline"],
            new.get(r["backbone"], {}).get("baseline"),
            r["lo"],
            r["hi"],
        )
        for r in before["ensemble"]["table"]
    ]


def _corr_rows(study: dict):
    for p in study["panels"]:
        for c in p["correlations"]:
            yield (p["name"], c["dataset"], c["score"], c["truth"]), c


def validate_moves(before: dict, after: dict) -> list[dict]:
    new = dict(_corr_rows(after))
    rows = []
    for key, c in _corr_rows(before):
        a = new.get(key, {})
        what = " / ".join(key)
        rows.append(
            _row(
                f"{what} weighted tau",
                c["weighted_tau"],
                a.get("weighted_tau"),
                c["weighted_lo"],
                c["weighted_hi"],
            )
        )
        rows.append(_row(f"{what} tau", c["tau"], a.get("tau"), c["tau_lo"], c["tau_hi"]))
    return rows


def summarise(rows: list[dict]) -> dict:
    judged = [r for r in rows if r["inside"] is not None]
    outside = [r for r in judged if not r["inside"]]
    moves = [abs(r["move"]) for r in judged]
    return {
        "compared": len(judged),
        "missing": len(rows) - len(judged),
        "outside": len(outside),
        "largest_move": max(moves, default=None),
        "outside_rows": outside,
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--before", required=True, type=Path)
    ap.add_argument("--after", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    parts = {
        "demo": ("demo/results.json", demo_moves),
        "stability": ("benchmarks/stability.json", stability_moves),
        "validate": ("validate/validate.json", validate_moves),
    }
    out = {"benchmark": "moves", "before": str(args.before), "after": str(args.after)}
    for name, (rel, fn) in parts.items():
        a, b = args.before / rel, args.after / rel
        if not (a.is_file() and b.is_file()):
            continue
        old, new = json.loads(a.read_text()), json.loads(b.read_text())
        rows = fn(old, new)
        out[name] = {**summarise(rows), "rows": rows}
        if name == "demo":
            out[name]["order"] = demo_order(old, new)
        s = out[name]
        print(
            f"{name}: {s['compared']} numbers with an earlier interval, {s['outside']} "
            f"outside it, largest move {s['largest_move']:.4f}"
        )
        for r in s["outside_rows"][:20]:
            span = f"[{r['lo']:.4f}, {r['hi']:.4f}]"
            print(f"  outside: {r['what']}: {r['before']:.4f} -> {r['after']:.4f} {span}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text(args.out, json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
