"""Results files of a run: results.json (everything), results.csv (one row per
backbone, ranked), stages.csv, per_class.csv and timings.csv; their columns are
declared in ``lteval.rank.schema``. Each file is written atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from lteval.atomic import write_text
from lteval.rank import schema
from lteval.rank.schema import TIMINGS
from lteval.rank.scoring import BackboneScore, rank_rows
from lteval.rank.validity import tied_with

RESULT_FILES = ("results.json", "results.csv", "stages.csv", "per_class.csv", "timings.csv")


def _clean(obj):
    """JSON-safe: numpy scalars/arrays to Python, NaN/inf to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_results(
    out: Path, run: dict, scores: list[BackboneScore], by: str, validity: dict | None = None
) -> dict:
    """Write the results files (``RESULT_FILES``) under ``out``; returns the results dict.

    With ``validity`` (``lteval.rank.validate_ranking``), every row gains
    ``{metric}_lo`` / ``{metric}_hi`` interval columns and ``tied_with``.
    """
    validity = validity or {"intervals": {}, "pairs": [], "correlations": []}
    ties = tied_with(validity["pairs"])
    rows = []
    for s in scores:
        row = dict(s.row)
        for metric, (lo, hi) in validity["intervals"].get(row["backbone"], {}).items():
            row[f"{metric}_lo"], row[f"{metric}_hi"] = lo, hi
        if s.ok:
            row["tied_with"] = ties.get(row["backbone"], [])
        rows.append(row)
    ranked = rank_rows(rows, by)
    stages = [r for s in scores for r in s.stages]
    per_class = [r for s in scores for r in s.per_class]
    run = {**run, "ranked_by": by}
    schema.check_rows(ranked, schema.ROW.keys() | schema.INTERVALS, "results")
    schema.check_rows(stages, schema.STAGE, "stages.csv")
    schema.check_rows(per_class, schema.PER_CLASS, "per_class.csv")
    schema.check_rows([run], schema.RUN, "results.json run")
    out.mkdir(parents=True, exist_ok=True)
    results = _clean(
        {
            "run": run,
            "backbones": ranked,
            "validity": {k: v for k, v in validity.items() if k != "intervals"},
            "stages": stages,
            "per_class": per_class,
        }
    )
    write_text(out / "results.json", json.dumps(results, indent=2))
    flat = pd.json_normalize(results["backbones"], sep=".")
    for col in ("tied_with", "skipped_images"):
        if col in flat:
            flat[col] = flat[col].map(lambda v: ";".join(v) if isinstance(v, list) else v)
    timing = [c for c in flat if c.split(".")[0] in TIMINGS]
    write_text(out / "results.csv", flat.drop(columns=timing).to_csv(index=False))
    write_text(out / "timings.csv", flat[["backbone", *timing]].to_csv(index=False))
    write_text(out / "stages.csv", pd.DataFrame(results["stages"]).to_csv(index=False))
    write_text(out / "per_class.csv", pd.DataFrame(results["per_class"]).to_csv(index=False))
    return results


def read_results(out: Path) -> dict:
    """The results dict of a run folder (raises FileNotFoundError naming the file)."""
    path = Path(out) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {out} the --out folder of a rank run?")
    return json.loads(path.read_text())
