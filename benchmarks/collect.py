"""Collect every ``reports/benchmarks/*.json`` into ``reports/benchmarks/index.html``.

One section per benchmark: its scalar results, its tables (lists of records such
as per-backbone rows or stages), its targets and whether they were met, and the
machine and versions it ran on. Self-contained (no external resources); links to
the end-to-end rank report when ``benchmark-rank`` left one. Usage::

    python benchmarks/collect.py [--dir reports/benchmarks]
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
from pathlib import Path

ORDER = ["extract", "dlsa", "linear", "rank-embedded-default", "replicate"]
ASIDE = {"machine", "versions", "settings"}


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict | list):
        return html.escape(json.dumps(v))
    return html.escape(str(v))


def _table(records: list[dict]) -> str:
    cols = list(dict.fromkeys(k for r in records for k in r))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in records
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def _targets(d: dict) -> str:
    """Target checks the JSON makes possible: dlsa's wall/RSS/accuracy, extract's ratio."""
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
    if not checks:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{_fmt(v)}</td><td>{html.escape(t)}</td>"
        f'<td class="{"met" if ok else "missed"}">{"met" if ok else "MISSED"}</td></tr>'
        for n, v, t, ok in checks
    )
    head = "<tr><th>what</th><th>value</th><th>target</th><th></th></tr>"
    return f"<h3>Targets</h3><table>{head}{rows}</table>"


def section(name: str, d: dict) -> str:
    parts = [f'<section id="{html.escape(name)}"><h2>{html.escape(d.get("benchmark", name))}</h2>']
    scalars = {k: v for k, v in d.items() if not isinstance(v, dict | list) and k != "benchmark"}
    parts.append(_table([scalars]) if scalars else "")
    parts.append(_targets(d))
    for k, v in d.items():
        if k in ASIDE or k in ("targets", "checks"):
            continue
        if isinstance(v, dict) and v:
            parts.append(f"<h3>{html.escape(k)}</h3>" + _table([v]))
        elif isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
            parts.append(f"<h3>{html.escape(k)}</h3>" + _table(v))
    aside = {k: d[k] for k in ASIDE if k in d}
    parts.append(
        f"<details><summary>machine, versions, settings</summary><pre>"
        f"{html.escape(json.dumps(aside, indent=2))}</pre></details></section>"
    )
    return "\n".join(parts)


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
    link = (
        '<p>End-to-end rank report of the embedded default: <a href="rank-report/index.html">'
        "rank-report/index.html</a>.</p>"
        if (root / "rank-report" / "index.html").is_file()
        else ""
    )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>lteval benchmarks</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto}"
        "table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}"
        "td,th{border:1px solid #ccc;padding:3px 6px}.scroll{overflow-x:auto}"
        ".met{background:#e7f5e7}.missed{background:#f8d7da}</style></head><body>"
        "<h1>lteval benchmarks</h1><p>Collected from "
        + ", ".join(f"<code>{html.escape(n)}.json</code>" for n in names)
        + ". Every number is what the last <code>make benchmark</code> run measured"
        " on this machine.</p>"
        + link
        + "\n".join(section(n, found[n]) for n in names)
        + "</body></html>"
    )
    tmp = root / ".index.html.tmp"
    tmp.write_text(page)
    os.replace(tmp, root / "index.html")
    print(root / "index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
