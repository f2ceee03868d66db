"""Results files of a run: results.json (everything), results.csv (one row per
backbone, ranked), stages.csv, per_class.csv and timings.csv; their columns are
declared in ``lteval.rank.schema``. Each file is written atomically."""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from lteval.atomic import MANIFEST, unchanged, write_text
from lteval.errors import LtevalError, RunFolderError, read_user_json
from lteval.rank import schema
from lteval.rank.bootstrap import tied_with
from lteval.rank.pick import what_to_pick
from lteval.rank.row import Row, Status, is_ok
from lteval.rank.schema import TIMINGS
from lteval.rank.scoring import BackboneScore, rank_rows

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


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""A spreadsheet reads a cell that starts with one of these as a formula (OWASP,
"CSV Injection")."""


NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
"""A cell that is one number: a spreadsheet reads it as that number, nothing more."""


def csv_text(df: pd.DataFrame) -> str:
    """``df`` as CSV text, with every text cell that starts with ``FORMULA_START``
    prefixed by a single quote, as OWASP recommends, so that a spreadsheet shows it
    as text instead of running it (a backbone named ``=HYPERLINK(...)``). Numbers,
    and text that is one number (a class named "-1"), are written as they are;
    results.json keeps every value unchanged."""

    def safe(v):
        if not isinstance(v, str) or not v.startswith(FORMULA_START) or NUMBER.fullmatch(v):
            return v
        return "'" + v

    out = df.copy()
    for col in out.columns:
        if not pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].map(safe)
    return out.to_csv(index=False)


def result_rows(scores: list[BackboneScore], by: str, validity: dict | None = None) -> list[Row]:
    """Each backbone's typed row, best first by ``by``, built once: its scores, and
    with ``validity`` (``lteval.rank.validate_ranking``) its ``{metric}_lo`` /
    ``{metric}_hi`` interval columns and ``tied_with``."""
    validity = validity or {"intervals": {}, "pairs": []}
    ties = tied_with(validity["pairs"])
    rows = []
    for s in scores:
        row = dict(s.row)
        for metric, (lo, hi) in validity["intervals"].get(row["backbone"], {}).items():
            row[f"{metric}_lo"], row[f"{metric}_hi"] = lo, hi
        if s.ok:
            row["tied_with"] = ties.get(row["backbone"], [])
        rows.append(row)
    return [Row.of(r) for r in rank_rows(rows, by)]


def write_results(
    out: Path, run: dict, scores: list[BackboneScore], by: str, validity: dict | None = None
) -> dict:
    """Write the results files (``RESULT_FILES``) under ``out``; returns the results dict.

    With ``validity`` (``lteval.rank.validate_ranking``), every row gains
    ``{metric}_lo`` / ``{metric}_hi`` interval columns and ``tied_with``.
    """
    validity = validity or {"intervals": {}, "pairs": [], "correlations": []}
    ranked = result_rows(scores, by, validity)
    stages = [r for s in scores for r in s.stages]
    per_class = [r for s in scores for r in s.per_class]
    run = {**run, "ranked_by": by}
    schema.check_rows(stages, schema.STAGE, "stages.csv")
    schema.check_rows(per_class, schema.PER_CLASS, "per_class.csv")
    schema.check_rows([run], schema.RUN, "results.json run")
    out.mkdir(parents=True, exist_ok=True)
    results = _clean(
        {
            "run": run,
            "backbones": [r.to_dict() for r in ranked],
            "validity": {k: v for k, v in validity.items() if k != "intervals"},
            "pick": what_to_pick(ranked, validity, by),
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
    write_text(out / "results.csv", csv_text(flat.drop(columns=timing)))
    write_text(out / "timings.csv", csv_text(flat[["backbone", *timing]]))
    write_text(out / "stages.csv", csv_text(pd.DataFrame(results["stages"])))
    write_text(out / "per_class.csv", csv_text(pd.DataFrame(results["per_class"])))
    return results


def read_results(out: str | Path) -> dict:
    """The results dict of a run folder. RunFolderError (one line naming the file,
    what is wrong and the fix) when it is missing, not JSON or not shaped as
    ``write_results`` writes it."""
    path = Path(out) / "results.json"
    fix = f"rerun `lteval rank ... --out {out}` to rebuild it"
    if not path.is_file():
        raise RunFolderError(f"{path} not found: is {out} the output folder of a rank run?")
    res = read_user_json(path, "the run's results file", RunFolderError, f"truncated? {fix}")
    problem = _shape_problem(res)
    if problem:
        raise RunFolderError(f"{path} is not an lteval results file: {problem}; {fix}")
    return res


@contextlib.contextmanager
def reading_runs(*folders: str | Path) -> Iterator[None]:
    """Around code that reads run folders: an error that a results.json changed since
    lteval wrote it (or from before manifests) can cause becomes RunFolderError naming
    it; with every results.json as lteval wrote it, errors stay what they are (bugs)."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        edited = [f for f in folders if not unchanged(f, "results.json")]
        if isinstance(e, LtevalError) or not edited:
            raise
        folder = Path(edited[0])
        how = (
            "was changed since lteval wrote it"
            if (folder / MANIFEST).is_file()
            else "has no manifest to show lteval wrote it as it is"
        )
        raise RunFolderError(
            f"{folder / 'results.json'} {how} and cannot be read ({type(e).__name__}: {e}); "
            f"rerun `lteval rank ... --out {folder}`"
        ) from e


def _shape_problem(res) -> str | None:
    """What keeps ``res`` from being a results dict, or None."""
    if not isinstance(res, dict):
        return f"it holds a {type(res).__name__}, not an object"
    lists = {k: res.get(k) for k in ("backbones", "stages", "per_class")}
    if not isinstance(res.get("run"), dict):
        return "'run' is missing or not an object"
    for k, v in lists.items():
        if not isinstance(v, list) or not all(isinstance(r, dict) for r in v):
            return f"{k!r} is missing or not a list of objects"
    if not isinstance(res.get("validity", {}), dict):
        return "'validity' is not an object"
    by = res["run"].get("ranked_by")
    if by not in schema.METRICS:
        return f"run.ranked_by {by!r} is not a metric column"
    if not res["backbones"]:
        return "'backbones' is empty"
    for k in ("backbones", "stages", "per_class"):
        if not all(isinstance(r.get("backbone"), str) for r in res[k]):
            return f"a row of {k!r} has no backbone name"
    for r in res["backbones"]:
        status = r.get("status", Status.OK)
        if status not in tuple(Status):
            return f"backbone {r['backbone']!r} has status {status!r}"
        if is_ok(r) and not isinstance(r.get("rank"), int):
            return f"backbone {r['backbone']!r} has no rank"
    for r in res["backbones"]:  # what Row.of refuses: an undeclared column, a bad enum
        try:
            Row.of(r)
        except (ValueError, TypeError) as e:
            return f"backbone {r.get('backbone')!r}: {e}"
    return None
