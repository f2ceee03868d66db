"""Two runs side by side: the same backbones' metrics, ranks and intervals.

``compare_runs(a, b, by)`` returns a DataFrame with one row per backbone present
in either run; ``render_comparison`` writes a self-contained ``compare.html``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from lteval.atomic import check_overwrite, check_writable_dir, write_manifest, write_text
from lteval.errors import UsageError, arg, render
from lteval.rank import check_metric, read_results, reading_runs
from lteval.rank.results import csv_text
from lteval.rank.row import Status, is_ok
from lteval.report.pages import render_page

SETTINGS = ("dataset.name", "dataset.split_hash", "seed", "device", "ranked_by", "heads")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def compare_runs(dir_a: str | Path, dir_b: str | Path, by: str | None = None) -> dict:
    """Compare two ``lteval.rank`` output folders on metric ``by`` (default: A's ranking metric).

    Returns ``{"by", "table" (DataFrame), "settings" (DataFrame of run settings that
    differ or matter), "rank_tau" (Kendall tau of the two rankings over the shared
    backbones, NaN when fewer than 2), "shared" (count), "warnings" (why the runs'
    metrics are not comparable: ``not_comparable``)}``. In the table, ``separate`` is
    True when the two runs' 95% intervals of ``by`` do not overlap. RunFolderError for
    a missing or damaged run folder; UsageError when ``by`` is no column of a run.
    """
    a, b = read_results(dir_a), read_results(dir_b)
    with reading_runs(dir_a, dir_b):
        return _compare(a, b, by)


def not_comparable(run_a: dict, run_b: dict) -> list[str]:
    """Warnings when two runs' metrics are not comparable: other datasets, or other
    splits of one dataset."""
    da, db = run_a.get("dataset") or {}, run_b.get("dataset") or {}
    na, nb = da.get("name"), db.get("name")
    ha, hb = da.get("split_hash"), db.get("split_hash")
    if ha and ha == hb:  # the same split, though the folder may have been renamed
        return []
    if na != nb:
        return [
            f"the runs are on different datasets ({na} and {nb}): their metrics and "
            "intervals are not comparable, and a rank agreement only says how the "
            "ranking transfers between them"
        ]
    if ha != hb:
        return [
            render(
                f"the runs use different splits of {na} (split_hash {ha} and {hb}; another "
                f"{arg('seed')}, {arg('imbalance_factor')} or data): each difference mixes "
                "the split with the backbone"
            )
        ]
    return []


def _compare(a: dict, b: dict, by: str | None) -> dict:
    by = by or a["run"]["ranked_by"]
    check_metric(by)  # a metric column: not a name, a flag or a list
    rows_a = {r["backbone"]: r for r in a["backbones"]}
    rows_b = {r["backbone"]: r for r in b["backbones"]}
    for name, rows in (("A", rows_a), ("B", rows_b)):
        ok = [r for r in rows.values() if is_ok(r)]
        if ok and by not in ok[0]:
            raise UsageError(
                f"run {name} has no column {by!r}; pick {arg('by')} from its results.csv"
            )
    table = []
    for name in list(rows_a) + [n for n in rows_b if n not in rows_a]:
        ra, rb = rows_a.get(name, {}), rows_b.get(name, {})
        row = {"backbone": name}
        for tag, r in (("A", ra), ("B", rb)):
            row[f"rank_{tag}"] = r.get("rank")
            row[f"{by}_{tag}"] = r.get(by)
            row[f"lo_{tag}"], row[f"hi_{tag}"] = r.get(f"{by}_lo"), r.get(f"{by}_hi")
            row[f"status_{tag}"] = str(Status(r.get("status", Status.OK))) if r else "absent"
        va, vb = row[f"{by}_A"], row[f"{by}_B"]
        row["delta"] = vb - va if va is not None and vb is not None else None
        intervals = [row[k] for k in ("lo_A", "hi_A", "lo_B", "hi_B")]
        row["separate"] = (
            None
            if any(v is None for v in intervals)
            else bool(row["hi_A"] < row["lo_B"] or row["hi_B"] < row["lo_A"])
        )
        table.append(row)
    df = pd.DataFrame(table)
    both = df.dropna(subset=[f"{by}_A", f"{by}_B"])
    tau = (
        float(kendalltau(both[f"{by}_A"], both[f"{by}_B"]).statistic)  # tau-b; NaN if constant
        if len(both) >= 2
        else float("nan")
    )
    fa, fb = _flat(a["run"]), _flat(b["run"])
    keys = [k for k in SETTINGS if k in fa or k in fb]
    keys += sorted(
        k for k in set(fa) | set(fb) if k.startswith("versions.") and fa.get(k) != fb.get(k)
    )
    settings = pd.DataFrame(
        [
            {"setting": k, "A": fa.get(k), "B": fb.get(k), "same": fa.get(k) == fb.get(k)}
            for k in keys
        ]
    )
    return {
        "by": by,
        "table": df,
        "settings": settings,
        "rank_tau": tau,
        "shared": len(both),
        "warnings": not_comparable(a["run"], b["run"]),
    }


def _rank(rank, status: str) -> str | int:
    """A rank cell: the rank, or why there is none ("failed", "absent")."""
    if status != Status.OK:
        return status
    return "-" if rank is None or pd.isna(rank) else int(rank)


def format_text(cmp: dict, dir_a, dir_b) -> str:
    """The comparison as plain text for a terminal."""
    by, df = cmp["by"], cmp["table"].copy()

    def iv(v, lo, hi):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "n/a"
        return f"{v:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else "")

    lines = [f"A: {dir_a}", f"B: {dir_b}", f"metric: {by}", ""]
    lines += [f"WARNING: {w}" for w in cmp.get("warnings", [])]
    lines += [""] if cmp.get("warnings") else []
    view = pd.DataFrame(
        {
            "backbone": df["backbone"],
            "rank A": [_rank(r["rank_A"], r["status_A"]) for _, r in df.iterrows()],
            "rank B": [_rank(r["rank_B"], r["status_B"]) for _, r in df.iterrows()],
            f"{by} A": [iv(r[f"{by}_A"], r["lo_A"], r["hi_A"]) for _, r in df.iterrows()],
            f"{by} B": [iv(r[f"{by}_B"], r["lo_B"], r["hi_B"]) for _, r in df.iterrows()],
            "B - A": df["delta"].map(lambda v: "n/a" if v is None or pd.isna(v) else f"{v:+.3f}"),
            "intervals": df["separate"]
            .map({True: "separate", False: "overlap", None: "n/a"})
            .fillna("n/a"),
        }
    )
    lines.append(view.to_string(index=False))
    lines.append("")
    lines.append(
        f"Kendall tau between the two runs' {by} over {cmp['shared']} shared backbones: "
        + ("n/a" if np.isnan(cmp["rank_tau"]) else f"{cmp['rank_tau']:.3f}")
    )
    lines.append("")
    lines.append(cmp["settings"].to_string(index=False))
    return "\n".join(lines)


def render_comparison(cmp: dict, dir_a, dir_b, out: str | Path) -> Path:
    """Write ``out/compare.html`` (self-contained, no external resources) and ``compare.csv``."""
    out = Path(out)
    check_out_files(out)
    page = render_page(
        "compare.html", a=str(dir_a), b=str(dir_b), text=format_text(cmp, dir_a, dir_b)
    )
    for name, text in (("compare.html", page), ("compare.csv", csv_text(cmp["table"]))):
        write_text(out / name, text)
    write_manifest(out, OUT_FILES)  # a run folder that holds them may still be rerun
    return out / "compare.html"


OUT_FILES = ("compare.html", "compare.csv")


def check_out_files(out: str | Path) -> None:
    """OutputError, before any work, unless ``out`` can take ``OUT_FILES``: a folder
    that is writable, and no file of that name there that lteval did not write."""
    check_writable_dir(out, arg("out"))
    check_overwrite(out, OUT_FILES, arg("out"))
