"""Write the validation study's folder: ``validate.json`` and ``index.html``,
built beside the target and swapped in whole (never half-written)."""

from __future__ import annotations

import json
from pathlib import Path

from lteval import atomic
from lteval.report.pages import fmt, render_page
from lteval.study.stats import pooled


def _default(o):
    return o.item() if hasattr(o, "item") else str(o)


def _pooled_by_score(rows: list[dict], truth: str | None = None) -> dict:
    return {
        c["score"]: c
        for c in rows
        if c["dataset"] == "pooled" and (truth is None or c["truth"] == truth)
    }


def render(result: dict, timings: dict) -> str:
    datasets = [*result["datasets"], "pooled"]
    table = {(c["dataset"], c["score"], c["truth"]): c for c in result["correlations"]}
    noise = {  # per panel: each score's pooled retest and size-controlled tau
        p["name"]: {
            "retest": _pooled_by_score(p.get("retest", [])),
            "sized": _pooled_by_score(p.get("size_controlled", []), "truth_few"),
        }
        for p in result.get("panels", [])
    }
    return render_page(
        "validate.html",
        r=result,
        datasets=datasets,
        table=table,
        fmt=fmt,
        timings=timings,
        noise=noise,
    )


SUMMARY = Path(__file__).with_name("study_summary.json")
"""The published study's pooled correlations, shipped with lteval so that every rank
report can quote them (refreshed with ``python -m lteval.validate --publish``)."""


def _pooled(correlations: list[dict]) -> dict:
    """{score: {truth: pooled weighted and plain tau with intervals}}."""
    keep = ("weighted_tau", "weighted_lo", "weighted_hi", "tau", "tau_lo", "tau_hi")
    out: dict = {}
    for truth in dict.fromkeys(c["truth"] for c in correlations):
        for score, c in pooled(correlations, truth).items():
            out.setdefault(score, {})[truth] = {k: c[k] for k in keep}
    return out


def summary(result: dict) -> dict:
    """The part of a study every rank report quotes: pooled correlations per score
    (of the first panel), and each panel's pooled correlations and answer."""
    first = result.get("panels", [{}])[0].get("name", "default")
    return {
        "command": result["command"],
        "datasets": list(result["datasets"]),
        "feature_sets": sum(r.get("panel", first) == first for r in result["feature_sets"]),
        "n_boot": result["n_boot"],
        "pooled": _pooled(result["correlations"]),
        "panels": {
            p["name"]: {
                "datasets": list(p["datasets"]),
                "members": len(p["members"]),
                "pooled": _pooled(p["correlations"]),
                "replicate": _pooled(p.get("replicate", [])).get("replicate", {}),
                "answer": p["answer"],
            }
            for p in result.get("panels", [])
        },
    }


def load_summary(path: Path | None = None) -> dict | None:
    """The shipped study summary (``SUMMARY``), or None when there is none."""
    path = path or SUMMARY
    return json.loads(path.read_text()) if path.is_file() else None


def write_json_atomic(path: Path, data: dict) -> None:
    atomic.write_text(path, json.dumps(data, indent=2, default=_default) + "\n")


def write_study(out: str | Path, result: dict, timings: dict | None = None) -> Path:
    """Write ``out``/validate.json, ``timings.json`` (wall seconds: not reproducible,
    so kept apart) and ``index.html`` as one folder, atomically; returns index.html."""
    out = Path(out)
    with atomic.folder(out) as tmp:
        (tmp / "validate.json").write_text(json.dumps(result, indent=2, default=_default))
        (tmp / "timings.json").write_text(json.dumps(timings or {}, indent=2, default=_default))
        (tmp / "index.html").write_text(render(result, timings or {}))
    return out / "index.html"
