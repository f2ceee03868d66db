"""Render ``index.html`` and its PNGs from a run's results files alone."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jinja2

from lteval.rank import read_results
from lteval.report import plots

COLUMNS = [
    "separability",
    "logme",
    "dlsa_balanced",
    "probe_balanced",
    "lift_balanced",
    "dlsa_many",
    "dlsa_medium",
    "dlsa_few",
    "probe_many",
    "probe_medium",
    "probe_few",
    "dlsa_overall",
    "probe_overall",
    "feature_dim",
    "num_params",
    "extract_seconds",
]
STAGE_COLUMNS = [
    "backbone",
    "stage",
    "n_active",
    "n_filtered",
    "somers_d",
    "auroc_many_few",
    "filtered_many_share",
    "filtered_medium_share",
    "filtered_few_share",
    "remaining_train_imbalance_ratio",
    "remaining_train_norm_entropy",
    "stage_accuracy",
]


def fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 1e4 else f"{v:.3g}"
    if isinstance(v, int) and v >= 10_000:
        return f"{v / 1e6:.2f}M"
    return str(v)


def render_report(results_dir: str | Path) -> Path:
    """Write ``index.html`` plus PNGs into ``results_dir`` from its results.json."""
    out = Path(results_dir)
    res = read_results(out)
    rows, run = res["backbones"], res["run"]
    for r in rows:
        r["weights_kind"] = (
            "precomputed"
            if r.get("precomputed")
            else "pretrained"
            if r.get("pretrained")
            else "RANDOM"
        )
    images = [
        (plots.ranking_bar(rows, run["ranked_by"], out), f"Backbones by {run['ranked_by']}"),
        (plots.group_bars(rows, out), "Many/medium/few and balanced accuracy"),
        (
            plots.stage_curves(res["stages"], out),
            "Share of each shot group among filtered samples, per stage",
        ),
        (
            plots.accuracy_vs_frequency(res["per_class"], out),
            "Per-class accuracy against class frequency",
        ),
    ]
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lteval.report", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
    )
    settings = {r["backbone"]: r.get("dlsa_settings") for r in rows}
    html = env.get_template("index.html").render(
        run=run,
        rows=rows,
        stages=res["stages"],
        images=images,
        fmt=fmt,
        columns=[c for c in COLUMNS if rows and c in rows[0]],
        stage_columns=STAGE_COLUMNS,
        random_weights=[r["backbone"] for r in rows if r["weights_kind"] == "RANDOM"],
        precomputed=any(r.get("precomputed") for r in rows),
        run_json=json.dumps(run, indent=2),
        settings_json=json.dumps(settings, indent=2),
    )
    tmp = out / ".index.html.tmp"
    tmp.write_text(html)
    os.replace(tmp, out / "index.html")
    return out / "index.html"
