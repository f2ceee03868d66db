"""Collect every ``reports/benchmarks/*.json`` into ``reports/benchmarks/index.html``.

One section per benchmark: its scalar results, its tables (lists of records such
as per-backbone rows or stages), its targets and whether they were met, and the
machine and versions it ran on. Self-contained (no external resources); links to
the end-to-end rank report when ``benchmark-rank`` left one. Usage::

    python benchmarks/collect.py [--dir reports/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lteval.atomic import write_text
from lteval.report.pages import render_page

ORDER = [
    "extract",
    "dlsa",
    "linear",
    "rank-embedded-default",
    "replicate",
    "stability",
    "scale",
    "gpu-extract",
    "scale-cuda",
]
ASIDE = {"machine", "versions", "settings"}


def _fmt(v) -> str:
    """A cell's text (the template escapes it)."""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict | list):
        return json.dumps(v)
    return str(v)


def _table(records: list[dict]) -> dict:
    """A table for the template: its columns and rows of formatted cells."""
    cols = list(dict.fromkeys(k for r in records for k in r))
    return {"columns": cols, "rows": [[_fmt(r.get(c, "")) for c in cols] for r in records]}


def _targets(d: dict) -> list[tuple]:
    """Target checks the JSON makes possible: dlsa's wall/RSS/accuracy, extract's ratio:
    (what, value, target, met) each."""
    checks = []
    t = d.get("targets") or {}
    for key, what in (("wall_seconds", "wall seconds"), ("peak_rss_mb", "peak RSS MB")):
        if key in t and key in d:
            checks.append((what, d[key], f"<= {t[key]}", d[key] <= t[key]))
    if "dlsa" in d and "bsm_probe" in d:
        a, b = d["dlsa"]["balanced"], d["bsm_probe"]["balanced"]
        checks.append(("DLSA balanced vs probe", f"{a:.4f} vs {b:.4f}", ">= probe", a >= b))
    if "target_ratio" in d:
        for r in d.get("rows", []):
            if "ratio" in r:
                checks.append(
                    (
                        f"throughput ratio {r.get('backbone', '')}",
                        r["ratio"],
                        f">= {d['target_ratio']}",
                        r["ratio"] >= d["target_ratio"],
                    )
                )
    for c in d.get("checks", []):  # named pass/fail checks a benchmark made itself
        checks.append((c["what"], c["value"], c["target"], bool(c["met"])))
    return [(n, _fmt(v), t, ok) for n, v, t, ok in checks]


def section(name: str, d: dict) -> dict:
    """One benchmark's section for the template."""
    scalars = {k: v for k, v in d.items() if not isinstance(v, dict | list) and k != "benchmark"}
    tables = []
    for k, v in d.items():
        if k in ASIDE or k in ("targets", "checks"):
            continue
        if isinstance(v, dict) and v:
            tables.append((k, _table([v])))
        elif isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
            tables.append((k, _table(v)))
    return {
        "id": name,
        "title": d.get("benchmark", name),
        "scalars": _table([scalars]) if scalars else None,
        "targets": _targets(d),
        "tables": tables,
        "aside": json.dumps({k: d[k] for k in ASIDE if k in d}, indent=2),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dir", default="reports/benchmarks")
    args = p.parse_args()
    root = Path(args.dir)
    found = {f.stem: json.loads(f.read_text()) for f in sorted(root.glob("*.json"))}
    if not found:
        print(f"collect: no *.json in {root}: run `make benchmark` first", file=sys.stderr)
        return 2
    names = sorted(
        found,
        key=lambda n: (
            ORDER.index(found[n].get("benchmark")) if found[n].get("benchmark") in ORDER else 99,
            n,
        ),
    )
    page = render_page(
        "benchmarks.html",
        names=names,
        rank_report=(root / "rank-report" / "index.html").is_file(),
        sections=[section(n, found[n]) for n in names],
    )
    write_text(root / "index.html", page)
    print(root / "index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
