"""The validation study as one library call: does a score predict tail accuracy?

    from lteval.study import run_study
    study = run_study(datasets=["animal-mnist-lt"], bootstrap=200)
    study.record["verdicts"]["truth_few"]["separability"]

``run_study`` scores every member of a panel (``lteval.study.panels``) on each
dataset with the pipeline's own scoring, guards and failure rows, then correlates
every score with the accuracy the best-on-validation head reaches
(``lteval.study.stats``). ``lteval validate`` parses its options, calls it and
writes the folder (``lteval.report.study.write_study``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lteval.constraints import check_params
from lteval.data import load_dataset
from lteval.errors import UsageError, arg
from lteval.features import RunOptions, resolve_device
from lteval.rank.arguments import check_bootstrap, check_names, check_runtime, check_settings
from lteval.rank.schema import TIMINGS
from lteval.rank.scoring import HEADS, BackboneScore, guarded, score_features
from lteval.study.ceiling import replicate_taus, retest_taus, size_controlled, with_fractions
from lteval.study.panels import SPLITS, Panel, member_features, panels, parse_member, study_panel
from lteval.study.replicate import replicate_fields, replicate_seed
from lteval.study.stats import (
    NAIVE,
    SCORES,
    TRUTHS,
    answer,
    correlations,
    ground_truth,
    verdicts,
)

log = logging.getLogger(__name__)

MIN_SCORED = 3
"""Feature sets a dataset needs scored for a rank correlation."""
RETESTED = [s for s in SCORES if s not in NAIVE]
"""The scores given a test-retest (the naive ones do not change with a refit)."""
SCORES_SIZED = RETESTED
"""The scores given a size-controlled tau (partialling size out of itself is moot)."""


@dataclass
class StudyResult:
    """``record``: what validate.json holds (reproducible: the same seed, the same
    bytes); ``timings``: wall seconds, per feature set and in all (kept apart)."""

    record: dict
    timings: dict = field(default_factory=dict)

    @property
    def failed(self) -> list[dict]:
        """The feature sets that could not be scored, each with its error row."""
        return self.record["failed"]

    @property
    def incomplete(self) -> list[dict]:
        """The later panels that ended short (each with its ``error``): recorded
        without correlations, while the finished panels are kept."""
        return [p for p in self.record["panels"] if "error" in p]


def run_study(
    panel: Sequence[str] | None = None,
    datasets: Sequence[str] = ("animal-mnist-lt", "fashion-mnist-lt"),
    *,
    more_panels: Sequence[str] = (),
    heads: Sequence[str] | None = None,
    input_size: int | None = 128,
    runtime: RunOptions | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    dlsa: Mapping | None = None,
    progress: bool = True,
    replicate: bool = True,
) -> StudyResult:
    """Score ``panel`` (default ``study_panel()``) on each of ``datasets`` (keys of
    ``SPLITS``), then each panel named in ``more_panels`` (``panels()``, e.g.
    "lt-methods") on its own datasets, and correlate every score of ``SCORES`` with
    each truth of ``TRUTHS``, per panel (pooled over its datasets).

    ``heads``: the baselines next to DLSA and the probe (default: all). ``runtime``:
    how to extract (device, batch size, workers, lock timeout). ``bootstrap``
    replicates over feature sets; ``seed`` drives every random choice; ``dlsa``: DLSA
    settings over the scaled defaults. ``replicate``: score every feature set a
    second time under another ``random_state`` for the truth's noise ceiling and
    each score's test-retest (``lteval.study.replicate``; twice the scoring time).
    A member that fails is recorded with the
    pipeline's guard and failure row (``lteval.rank.scoring.guarded``) and the study
    goes on. When a dataset of a panel ends with fewer than ``MIN_SCORED`` feature
    sets scored: UsageError if every failure was a user error, RuntimeError (a bug)
    otherwise, for the first panel; a later panel is kept in ``record["panels"]``
    with that ``error`` and no correlations (``StudyResult.incomplete``), so that
    the finished panels are not lost. Every panel's datasets are loaded before any
    scoring. The record's top-level ``correlations`` are the first panel's.
    """
    check_names(panel=panel, datasets=datasets, heads=heads, more_panels=more_panels)
    members = list(study_panel() if panel is None else panel)
    datasets = list(datasets)
    bad = [d for d in datasets if d not in SPLITS]
    if not datasets or bad:
        named = arg("datasets", datasets, cli=repr(",".join(datasets)))
        raise UsageError(f"{named}: choose from {sorted(SPLITS)}")
    known = panels()
    unknown = [p for p in more_panels if p not in known or p == "default"]
    if len(set(more_panels)) != len(more_panels):
        raise UsageError(f"{arg('more_panels', list(more_panels))} names a panel twice")
    if unknown:
        more = [k for k in known if k != "default"]
        raise UsageError(f"{arg('more_panels', list(more_panels))}: choose from {more}")
    if len(members) < MIN_SCORED or len(set(members)) != len(members):
        raise UsageError(f"{arg('panel')} must name at least {MIN_SCORED} distinct feature sets")
    first = Panel(
        "default" if panel is None else "custom", tuple(members), {d: SPLITS[d] for d in datasets}
    )
    todo = [first, *(known[p] for p in more_panels)]
    for p in todo:
        for m in p.members:
            parse_member(m)
    heads = check_settings("separability", list(HEADS) if heads is None else heads, dlsa)
    check_params(seed=seed, input_size=input_size)
    check_bootstrap(bootstrap)
    seed, bootstrap = int(seed), int(bootstrap)  # numpy ints pass the checks; JSON needs int
    input_size = None if input_size is None else int(input_size)
    runtime = runtime or RunOptions(device=resolve_device("auto"))
    check_runtime(runtime)
    t0 = time.perf_counter()
    options = dict(
        heads=heads,
        input_size=input_size,
        runtime=runtime,
        seed=seed,
        dlsa=dlsa,
        progress=progress,
        replicate=replicate,
    )
    # every panel's datasets load before any scoring: a missing one fails in seconds
    loaded = [{d: load_dataset(d, seed=seed, **o) for d, o in p.splits.items()} for p in todo]
    rows, failures, timings, done = [], [], [], []
    for i, p in enumerate(todo):
        got, short = _score_panel(p, loaded[i], **options)
        loaded[i] = None  # its images are no longer needed
        rows, failures, timings = rows + got[0], failures + got[1], timings + got[2]
        entry = {"name": p.name, "members": list(p.members), "datasets": p.splits}
        if short:
            kind, message = short
            if p is first:  # without the first panel there is no study
                raise (RuntimeError if kind == "bug" else UsageError)(
                    f"{message}: no study written"
                )
            # a later panel's shortfall keeps the finished ones: recorded, not dropped
            log.warning(f"{message}; the other panels are kept")
            done.append(
                {
                    **entry,
                    "error": message,
                    "error_kind": kind,
                    "correlations": [],
                    "verdicts": {},
                    "answer": f"Not answered: {message}.",
                }
            )
            continue
        corr = correlations(got[0], SCORES, TRUTHS, n_boot=bootstrap, seed=seed)
        noise = {}
        if replicate:
            ceiling = replicate_taus(got[0], n_boot=bootstrap, seed=seed)
            corr = with_fractions(corr, ceiling)
            noise = {
                "replicate": ceiling,
                "retest": retest_taus(got[0], RETESTED, n_boot=bootstrap, seed=seed),
            }
        if len({r.get("num_params") for r in got[0]}) > 1:
            noise["size_controlled"] = size_controlled(
                got[0], SCORES_SIZED, TRUTHS, n_boot=bootstrap, seed=seed
            )
        done.append(
            {
                **entry,
                **noise,
                "correlations": corr,
                "verdicts": {t: verdicts(corr, t) for t in TRUTHS},
                "answer": answer(corr),
            }
        )
    record = {
        "command": None,  # a program sets it: what the user typed
        "seed": seed,
        "datasets": first.splits,
        "panel": members,
        "n_boot": bootstrap,
        "scores": SCORES,
        "correlations": done[0]["correlations"],
        "verdicts": done[0]["verdicts"],
        "panels": done,
        "feature_sets": rows,
        "failed": failures,
        "dlsa_overrides": dict(dlsa) if dlsa else dlsa,
    }
    wall = {"wall_seconds": round(time.perf_counter() - t0, 1), "feature_sets": timings}
    return StudyResult(record, wall)


def _score(tag, phase, seed, *, member, splits, ds, runtime, dlsa, heads) -> BackboneScore:
    """``member``'s features ``splits`` scored with ``seed`` as every estimator's
    ``random_state``, under the pipeline's guard (a failure is a failed record)."""
    return guarded(
        tag,
        phase,
        score_features,
        member,
        splits,
        num_classes=len(ds.class_names),
        seed=seed,
        device=str(runtime.device),
        dlsa_overrides=dict(dlsa) if dlsa else None,
        heads=heads,
    )


def _score_panel(
    p: Panel, loaded: dict, *, heads, input_size, runtime, seed, dlsa, progress, replicate
):
    """((rows, failures, timings), shortfall) of panel ``p`` on each of its ``loaded``
    datasets; shortfall: None, or (error kind, message) when a dataset ended with
    fewer than ``MIN_SCORED`` feature sets scored: kind "user" when every failure
    was a user error (as for a ranking), else "bug"."""
    rows, failures, timings = [], [], []
    for d, ds in loaded.items():
        for i, m in enumerate(p.members, 1):
            tag, t1 = f"[{p.name} {d} {i}/{len(p.members)}] {m}", time.perf_counter()
            # one member's failure must not end the study: the pipeline's guard and rows
            got = guarded(
                tag,
                "extracting",
                member_features,
                m,
                ds,
                seed=seed,
                input_size=input_size,
                run=runtime,
                progress=progress,
            )
            if not isinstance(got, BackboneScore):
                splits, facts = got
                scoring = dict(member=m, splits=splits, ds=ds, runtime=runtime, dlsa=dlsa)
                got = _score(tag, "scoring", seed, heads=heads, **scoring)
            where = {"panel": p.name, "dataset": d, "member": m}
            if not got.ok:
                failures.append({**where, **got.row, "backbone": m})
                continue
            row = {k: v for k, v in got.row.items() if k not in TIMINGS}
            row.update(**where, **facts)
            timings.append(
                {**where, "seconds": round(time.perf_counter() - t1, 1)}
                | {k: got.row.get(k) for k in TIMINGS}
            )
            methods = ["dlsa", "probe", *heads]
            row.update(ground_truth(row, methods))
            if replicate:  # the whole refit under another random_state: ceiling, retest
                again = _score(
                    tag, "scoring the replicate", replicate_seed(seed), heads=heads, **scoring
                )
                row.update(replicate_fields(got, again, methods, RETESTED, seed))
                timings[-1]["seconds"] = round(time.perf_counter() - t1, 1)
            rows.append(row)
            log.info(
                f"{tag}: separability {row['separability']:.3f} (p {row['separability_p']:.2g}), "
                f"truth few {row['truth_few']:.3f} via {row['truth_method']}"
            )
    short = [d for d in p.splits if sum(r["dataset"] == d for r in rows) < MIN_SCORED]
    if not short:
        return (rows, failures, timings), None
    bug = any(f["error_kind"] == "bug" for f in failures)
    return (rows, failures, timings), (
        "bug" if bug else "user",
        f"panel {p.name}: fewer than {MIN_SCORED} feature sets scored on {short} "
        f"({len(failures)} failed; see the log)",
    )
