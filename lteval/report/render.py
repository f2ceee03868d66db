"""Render ``index.html`` and its PNGs from a run's results files alone."""

from __future__ import annotations

import json
import math
from pathlib import Path

from lteval.atomic import MANIFEST, check_overwrite, write_manifest, write_text
from lteval.backbones import WeightsKind
from lteval.rank import Evidence, Row, read_results, reading_runs
from lteval.rank.pick import what_to_pick
from lteval.rank.results import FORMULA_START
from lteval.rank.schema import REPORT_COLUMNS, REPORT_STAGE_COLUMNS, ROW, STAGE
from lteval.report import plots
from lteval.report.pages import fmt, render_page
from lteval.report.study import load_summary
from lteval.study.stats import GOAL, NAIVE

SUMMARY_COLUMNS = ("dlsa_balanced", "dlsa_few", "probe_balanced", "probe_few")
"""Next to rank, backbone and the ranking column in the report's first table, narrow
enough to read without scrolling sideways; every column follows in the next."""


def cell(row: dict, col: str) -> str:
    """A table cell: the value, and its 95% interval when the row has one."""
    text = fmt(row.get(col))
    lo, hi = row.get(f"{col}_lo"), row.get(f"{col}_hi")
    if lo is not None and hi is not None:
        text += f" [{lo:.3f}, {hi:.3f}]"
    return text


def weights_source(row: Row) -> str:
    """Where a backbone's weights came from, for the report: the registry package and
    version lteval installed them from (or the file), and the sha256 prefix."""
    if row.get("precomputed") or not row.get("pretrained"):
        return row.get("weights") or "n/a"
    sha = f"sha256 {row['weights_sha256']}" if row.get("weights_sha256") else ""
    if row.get("weights_package"):
        return f"{row['weights_package']}=={row['weights_version']}, {sha} ({row['weights']})"
    return f"{row.get('weights')}, {sha}".rstrip(", ")


def below_control(rows: list[Row]) -> list[str]:
    """Pretrained backbones ranked below a random-init control (rows in rank order)."""
    ranks = [r.rank for r in rows if r.kind is WeightsKind.CONTROL]
    if not ranks:
        return []
    best = min(ranks)
    return [r.backbone for r in rows if r.kind is WeightsKind.PRETRAINED and r.rank > best]


def separation_evidence(row: Row) -> str:
    """The verdict on a backbone's separability against the permutation null, in words."""
    evidence, p = row.evidence, row.get("separability_p")
    if evidence is Evidence.UNDEFINED:
        return "undefined (no stage with a permutation null)"
    if evidence is Evidence.NONE:
        return f"no evidence of head/tail separation (p = {p:.2f})"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def study_quote(by: str, study: dict | None) -> dict | None:
    """What lteval's validation study (``make validate``; ``study``: its shipped
    summary, ``load_summary()``) found for ``by`` and for separability against
    LogME, pooled over its datasets, against few-shot accuracy."""
    if not study:
        return None
    pooled = study["pooled"]
    sep = pooled.get("separability", {}).get("truth_few")
    logme = pooled.get("logme", {}).get("truth_few")
    naive = [(pooled[k]["truth_few"]["weighted_tau"], k) for k in NAIVE if k in pooled]
    naive = [n for n in naive if n[0] is not None and math.isfinite(n[0])]
    return {
        "by": pooled.get(by, {}).get("truth_few"),
        "separability": sep,
        "logme": logme,
        "naive": max(naive) if naive else None,  # (weighted tau, score) of the best one
        "goal": GOAL,
        "below_logme": bool(sep and logme and not sep["weighted_tau"] > logme["weighted_tau"]),
        "feature_sets": study["feature_sets"],
        "datasets": study["datasets"],
        # the later panels' one-sentence answers (the first panel is quoted above)
        "panels": [{"name": k, **v} for k, v in list(study.get("panels", {}).items())[1:]],
    }


def study_predictor(study: dict | None, truth: str = "truth_few") -> dict | None:
    """The shipped study's (``study``, as ``study_quote``) best predictor of ``truth``
    on its first panel: the score with the highest pooled weighted tau, that tau with
    its interval, and the truth's replicate tau (its noise ceiling; None where the
    study did not measure it). None without a shipped study."""
    if not study or not study.get("pooled"):
        return None
    taus = {
        s: v[truth]
        for s, v in study["pooled"].items()
        if truth in v
        and v[truth]["weighted_tau"] is not None
        and math.isfinite(v[truth]["weighted_tau"])
    }
    if not taus:
        return None
    best = max(taus, key=lambda s: taus[s]["weighted_tau"])
    first = next(iter(study.get("panels", {}).values()), {})
    ceiling = first.get("replicate", {}).get(truth, {}).get("weighted_tau")
    return {
        "score": best,
        "naive": best in NAIVE,
        **taus[best],
        "replicate_tau": ceiling,
        "panel": next(iter(study.get("panels", {})), "default"),
        "datasets": study["datasets"],
    }


def dlsa_status(rows: list[dict], stages: list[dict]) -> dict:
    """What the report must say about the filter itself: stages whose flow added no
    kept clusters over its untrained state, and backbones where DLSA did not beat
    the Balanced-Softmax probe on balanced accuracy."""
    known = [s for s in stages if "flow_learned" in s]
    return {
        "unlearned": [
            f"{s['backbone']} stage {s['stage']}" for s in known if not s["flow_learned"]
        ],
        "stages_known": len(known),
        "no_lift": [r["backbone"] for r in rows if not (r.get("lift_balanced", 0) > 0)],
    }


def render_report(results_dir: str | Path) -> Path:
    """Write ``index.html`` plus PNGs into ``results_dir`` from its results files alone
    (and record them in its manifest, when it has one: see ``lteval.atomic``).
    RunFolderError when the results files are missing or damaged; OutputError when
    index.html or a PNG there is not as lteval wrote it (edited, or the user's)."""
    out = Path(results_dir)
    res = read_results(out)
    targets = ["index.html", *plots.PNGS]
    check_overwrite(out, targets, "the run folder")
    try:
        with reading_runs(out):
            html, _ = _render(out, res)
        write_text(out / "index.html", html)
    finally:  # what this call wrote is lteval's, even when a later step failed
        if (out / MANIFEST).is_file():
            write_manifest(out, [n for n in targets if (out / n).is_file()])
    return out / "index.html"


def _render(out: Path, res: dict) -> tuple[str, list[str]]:
    """(index.html's text, the PNG names written into ``out``)."""
    run = res["run"]
    typed = [Row.of(r) for r in res["backbones"]]
    rows = [r for r in typed if r.ok]
    failed = [r.to_dict() for r in typed if not r.ok]
    validity = res.get("validity", {})
    shown = {  # what the report writes in words; every decision below reads the fields
        r.backbone: {
            "weights": r.kind.label if r.kind else "n/a",
            "source": weights_source(r),
            "evidence": separation_evidence(r) if "separability_p" in r else None,
        }
        for r in rows
    }
    by = run["ranked_by"]
    shipped = load_summary()  # the study every report quotes, read once
    images = [
        (plots.ranking_bar(rows, by, out), f"Backbones by {by}, with 95% bootstrap intervals"),
        (plots.group_bars(rows, out), "Many/medium/few accuracy per backbone (95% intervals)"),
        (
            plots.separability_vs_tail(rows, validity.get("correlations", []), out),
            "Separability against few-shot accuracy across backbones (Kendall's tau)",
        ),
        (
            plots.stage_curves(res["stages"], out),
            "Share of each shot group among filtered samples, per stage",
        ),
        (
            plots.accuracy_vs_frequency(res["per_class"], out),
            "Per-class accuracy against class frequency (above 20 classes: 20 frequency "
            "bins; every class is in per_class.csv)",
        ),
    ]
    settings = {r["backbone"]: r.get("dlsa_settings") for r in rows}
    config = out / "config.yaml"
    env_keys = ("versions", "device", "device_name", "torch_threads", "seed", "command")
    html = render_page(
        "index.html",
        run=run,
        by=by,
        rows=[r.to_dict() for r in rows],
        shown=shown,
        failed=failed,
        validity=validity,
        ties=[p for p in validity.get("pairs", []) if p["tie"]],
        stages=res["stages"],
        images=images,
        fmt=fmt,
        cell=cell,
        columns=[c for c in REPORT_COLUMNS if rows and c in rows[0]],
        summary_columns=[c for c in SUMMARY_COLUMNS if c != by and rows and c in rows[0]],
        stage_columns=REPORT_STAGE_COLUMNS,
        meaning=ROW,  # column headers carry their meaning as a tooltip
        stage_meaning=STAGE,
        random_weights=[r.backbone for r in rows if r.kind is WeightsKind.RANDOM],
        controls=[r.backbone for r in rows if r.kind is WeightsKind.CONTROL],
        below_control=below_control(rows),
        no_evidence=[
            r.backbone
            for r in rows
            if "separability_p" in r and r.evidence is not Evidence.SEPARATED
        ],
        dlsa_status=dlsa_status(rows, res["stages"]),
        study=study_quote(by, shipped),
        pick=res.get("pick") or what_to_pick(typed, validity, by),
        predictor=study_predictor(shipped),
        precomputed=any(r.get("precomputed") for r in rows),
        dataset_json=json.dumps(run.get("dataset"), indent=2),
        environment_json=json.dumps({k: run.get(k) for k in env_keys}, indent=2),
        csv_quoted=sorted({r.backbone for r in typed if r.backbone.startswith(FORMULA_START)}),
        config_text=config.read_text() if config.is_file() else None,
        settings_json=json.dumps(settings, indent=2),
    )
    return html, [name for name, _ in images if name]
