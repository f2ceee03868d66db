"""Score one backbone's features: DLSA separability and accuracy next to every
long-tailed head of ``lteval.heads``. Pure array code.

Method prefixes of the metric columns (``{method}_{overall|balanced|many|medium|few}``):
``dlsa``; ``probe`` (the Balanced-Softmax probe, DLSA's own regular classifier);
and the heads of ``HEADS``: ``ce`` (cross-entropy probe), ``la`` (post-hoc logit
adjustment), ``crt``, ``taunorm``, ``lws``, ``ncm`` (cosine), ``knn``. Each head
chooses its hyper-parameters on the validation split.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from tqdm import tqdm

from lteval.dlsa import DLSA, DLSAConfig, diagnostics, from_dict, scaled_for
from lteval.dlsa.train import training_dtype
from lteval.errors import LtevalError, UsageError, arg, first_line
from lteval.heads import (
    CRT,
    KNN,
    LWS,
    NCM,
    LinearProbe,
    LogitAdjusted,
    TauNorm,
    accuracy_report,
    balanced_accuracy,
    closed_form_scores,
    logme,
    shot_groups,
)
from lteval.rank.data_checks import check_features, check_splits, some_classes
from lteval.rank.row import Status, is_ok
from lteval.rank.schema import (
    ACCURACY_KEYS,
    ERROR_KINDS,
    HEAD_NAMES,
    METRICS,
    SEPARATION,
)

Split = tuple[np.ndarray, np.ndarray]

log = logging.getLogger(__name__)

HEADS: dict[str, Callable[[int], object]] = {
    "ce": lambda seed: LinearProbe(random_state=seed),
    "la": lambda seed: LogitAdjusted(random_state=seed),
    "crt": lambda seed: CRT(random_state=seed),
    "taunorm": lambda seed: TauNorm(random_state=seed),
    "lws": lambda seed: LWS(random_state=seed),
    "ncm": lambda seed: NCM(metric="cosine"),
    "knn": lambda seed: KNN(random_state=seed),
}
"""The baseline heads scored next to DLSA, by column prefix."""

POST_HOC = ("la", "taunorm", "lws")
"""Heads built on the CE probe: it is trained once per backbone and shared (its time
counts to the first of ``ce`` and these that runs)."""

if tuple(HEADS) != HEAD_NAMES:  # the schema declares the heads' columns
    raise ImportError(f"HEADS {list(HEADS)} differ from lteval.rank.schema.HEAD_NAMES")


@dataclass
class EvalArrays:
    """What the bootstrap needs of one backbone, all over the eval samples.

    y: (N,) labels; class_counts: (C,) train counts (the frequency separability
    orders by); group_counts: (C,) long-tailed train counts, train + validation (the
    shot groups); preds: method -> (N,) labels; stage_scores: per stage, (R, N)
    log p(x) of each of the stage's R flows ((N,) for one flow) (the ensemble's is their log mean
    density); stage_active: per stage, (N,) bool (the samples still active when the
    stage filters).
    """

    y: np.ndarray
    class_counts: np.ndarray
    group_counts: np.ndarray
    preds: dict[str, np.ndarray]
    stage_scores: list[np.ndarray]
    stage_active: list[np.ndarray]

    @property
    def flows(self) -> int:
        """R, the flows per stage (1 when no stage ran)."""
        return np.atleast_2d(self.stage_scores[0]).shape[0] if self.stage_scores else 1


@dataclass
class BackboneScore:
    """One backbone's results: a summary row, per-stage rows, per-class rows, and the
    eval arrays the ranking-validity bootstrap resamples (None for a failed one)."""

    row: dict
    stages: list[dict] = field(default_factory=list)
    per_class: list[dict] = field(default_factory=list)
    arrays: EvalArrays | None = None

    @property
    def ok(self) -> bool:
        return is_ok(self.row)


def failed(
    name: str, error: BaseException | str, phase: str, kind: str | None = None, **extra
) -> BackboneScore:
    """The record of a backbone that could not be scored (it keeps its error).

    ``kind`` (one of ``ERROR_KINDS``) defaults to "user" for an LtevalError and "bug"
    for any other exception; give it for a message string.
    """
    if kind is None:
        if isinstance(error, str):
            raise ValueError("failed(): give kind= with an error message string")
        kind = "user" if isinstance(error, LtevalError) else "bug"
    if kind not in ERROR_KINDS:
        raise ValueError(f"error kind {kind!r} is not one of {list(ERROR_KINDS)}")
    msg = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    row = {"backbone": name, "status": Status.FAILED.value, "phase": phase, "error_kind": kind}
    return BackboneScore({**row, "error": msg, **extra})


def guarded(name: str, phase: str, fn: Callable, *a, **kw):
    """``fn(*a, **kw)``, one phase of backbone ``name`` ("extracting", "scoring", ...);
    on failure the error is logged in one line and a failed record (``failed``, with
    the traceback of a bug) is returned instead of raised."""
    try:
        return fn(*a, **kw)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # one backbone's failure must not end the run
        log.error(f"{name}: FAILED while {phase}: {first_line(e)}")
        rec = failed(name, e, phase)
        if rec.row["error_kind"] == "bug":
            rec.row["traceback"] = traceback.format_exc()
        return rec


def check_heads(names: list[str] | tuple[str, ...]) -> list[str]:
    """Validate head prefixes (see ``HEADS``); raises UsageError naming the bad one."""
    bad = [h for h in names if h not in HEADS]
    if bad:
        raise UsageError(f"unknown head(s) {bad}; choose from {list(HEADS)} (or 'none')")
    return list(names)


def score_features(
    name: str,
    splits: dict[str, Split],
    *,
    num_classes: int,
    seed: int = 0,
    config: DLSAConfig | None = None,
    dlsa_overrides: dict | None = None,
    heads: list[str] | tuple[str, ...] | None = None,
    class_names: list[str] | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> BackboneScore:
    """Run DLSA, the probe and ``heads`` on ``{"train", "val", "eval"}: (X (N, D), y (N,))``.

    ``config`` defaults to the method's defaults scaled for the train size
    (``lteval.dlsa.scaled_for``), then ``dlsa_overrides`` (setting -> value) apply;
    the settings used are returned in the row. ``heads``: prefixes of ``HEADS``
    (default: all). ``device`` is where the flows train ("cuda" on a GPU machine).
    ``progress``: a bar on stderr over the flow epochs, the diagnostics and each head.
    """
    (Xtr, ytr), (Xv, yv), (Xe, ye) = (splits[s] for s in ("train", "val", "eval"))
    heads = check_heads(list(HEADS) if heads is None else heads)
    check_splits(splits, num_classes, class_names)
    warnings = check_features(splits)
    cfg = config or scaled_for(len(ytr), num_classes)
    if dlsa_overrides:  # a preset replaces the scaled defaults; other keys override
        base = {} if "preset" in dlsa_overrides else cfg.to_dict()
        cfg = from_dict({**base, **dlsa_overrides})
    cfg = replace(cfg, device=device)
    t0 = time.perf_counter()
    total = cfg.num_stages * cfg.flow_epochs + 2 + len(heads)
    with tqdm(
        total=total,
        desc=f"  {name}: DLSA flows",
        unit="step",
        file=sys.stderr,
        disable=not progress,
        leave=False,
        position=1,
    ) as bar:
        dlsa = DLSA.from_config(cfg, random_state=seed).fit(
            Xtr,
            ytr,
            X_val=Xv,
            y_val=yv,
            classes=np.arange(num_classes),
            progress=_advance(bar, name),
        )
        bar.update(cfg.num_stages * cfg.flow_epochs - bar.n)  # stages that did not run
        bar.set_description(f"  {name}: DLSA diagnostics")
        rep = diagnostics(dlsa, Xe, ye)
        bar.update(1)
        t_dlsa = time.perf_counter() - t0
        preds, val_preds, head_seconds = _heads(
            dlsa, rep["predictions"], heads, splits, num_classes, seed, bar, name
        )
        bar.set_description(f"  {name}: LogME and closed-form scores")
        row_logme = logme(Xtr, ytr)  # training-free transferability, train split only
        closed = closed_form_scores(Xtr, ytr, X_val=Xv, y_val=yv, group_counts=dlsa.group_counts_)
        bar.update(1)
    counts, lt_counts = dlsa.class_counts_, dlsa.group_counts_
    # validation balanced accuracy (each head also tuned on it): for choosing a head
    val_bal = {f"{m}_val_balanced": balanced_accuracy(yv, p) for m, p in val_preds.items()}
    picked = best_on_validation(val_bal, list(val_preds))
    if picked is not None:  # the head a user would deploy: chosen on validation only
        preds["pick"] = preds[picked]
    acc = {m: accuracy_report(ye, p, lt_counts) for m, p in preds.items()}
    row = {"backbone": name, "status": Status.OK.value, "separability": rep["separability"]}
    row.update({k: rep[k] for k in (*SEPARATION, "separability_p", "separability_sd")})
    row["flow_seeds"] = len(dlsa.stages_[0].gmf.epoch) if dlsa.stages_ else 0
    row["flow_precision"] = str(training_dtype(cfg) or torch.float32).removeprefix("torch.")
    for m in preds:
        row.update({f"{m}_{k}": acc[m][k] for k in ACCURACY_KEYS})
    row["lift_balanced"] = acc["dlsa"]["balanced"] - acc["probe"]["balanced"]
    row.update(val_bal)
    if picked is not None:
        row["pick_head"] = picked
    row["logme"] = row_logme
    row.update(closed)
    row.update(
        feature_dim=int(Xtr.shape[1]),
        n_train=len(ytr),
        n_val=len(yv),
        n_eval=len(ye),
        stages_run=len(dlsa.stages_),
        stages_note=dlsa.stopped_,
        score_seconds=round(time.perf_counter() - t0, 3),
        dlsa_seconds=round(t_dlsa, 3),
        head_seconds=head_seconds,
        dlsa_settings=cfg.to_dict(),
    )
    present = counts[counts > 0]
    if len(np.unique(present)) < 2:
        warnings.append(
            f"every class has the same number of train samples ({int(present[0])}): with "
            "no head and no tail, "
            "separability and the many/medium/few split are undefined (NaN)"
        )
    no_eval = np.setdiff1d(np.arange(num_classes), ye)
    if len(no_eval):
        warnings.append(
            f"{len(no_eval)} of {num_classes} classes have no eval samples "
            f"({some_classes(no_eval, class_names)}): balanced and "
            f"per-group accuracies average over the other {num_classes - len(no_eval)}"
        )
    if warnings:
        row["warning"] = "; ".join(warnings)
    stages = [{"backbone": name, **r} for r in rep["stages"]]
    groups = shot_groups(lt_counts)
    names = class_names or [str(c) for c in range(num_classes)]
    per_class = [
        {
            "backbone": name,
            "class": c,
            "class_name": names[c],
            "train_count": int(counts[c]),
            "lt_count": int(lt_counts[c]),
            "group": str(groups[c]),
            **{f"{m}_accuracy": float(acc[m]["per_class"][c]) for m in preds},
        }
        for c in range(num_classes)
    ]
    lp, route = rep["member_log_density"], rep["route"]
    active = [route >= s for s in range(len(lp))]
    arrays = EvalArrays(np.asarray(ye), counts, lt_counts, preds, lp, active)
    return BackboneScore(row, stages, per_class, arrays)


def _advance(bar, name: str) -> Callable[[int, str], None]:
    """DLSA's progress callback: name the stage on ``bar`` and advance it."""

    def advance(n: int, what: str) -> None:
        bar.set_description(f"  {name}: DLSA {what}", refresh=not n)  # n 0: shown now
        bar.update(n)

    return advance


def _heads(dlsa: DLSA, dlsa_eval, heads, splits, num_classes: int, seed: int, bar, name: str):
    """(eval predictions, validation predictions, seconds per head) of DLSA, its probe
    and each of ``heads``, advancing ``bar`` once per head."""
    (Xtr, ytr), (Xv, yv), (Xe, _) = (splits[s] for s in ("train", "val", "eval"))
    # DLSA's regular classifier is, by construction, the Balanced-Softmax probe
    # (same standardisation, head, seed and validation): reuse it, do not retrain.
    preds = {"dlsa": dlsa_eval, "probe": dlsa.predict_regular(Xe)}
    val_preds = {"dlsa": dlsa.predict(Xv), "probe": dlsa.predict_regular(Xv)} if len(yv) else {}
    head_seconds, ce, classes = {}, None, np.arange(num_classes)
    for h in heads:
        bar.set_description(f"  {name}: head {h}")
        t1 = time.perf_counter()
        est = HEADS[h](seed)
        if h in POST_HOC:  # one CE probe serves them all (the same one each would train)
            if ce is None:
                ce = HEADS["ce"](seed).fit(Xtr, ytr, X_val=Xv, y_val=yv, classes=classes)
            est.set_params(probe=ce)
        est.fit(Xtr, ytr, X_val=Xv, y_val=yv, classes=classes)
        if h == "ce":
            ce = est
        preds[h] = est.predict(Xe)
        if len(yv):
            val_preds[h] = est.predict(Xv)
        head_seconds[h] = round(time.perf_counter() - t1, 3)
        bar.update(1)
    return preds, val_preds, head_seconds


def best_on_validation(row: Mapping, methods: Sequence[str]) -> str | None:
    """The one rule that picks a head (the report's ``pick_head``, the study's truth):
    the method of ``methods`` with the best finite ``{method}_val_balanced`` in
    ``row``, the earlier one on a tie; None when no method has one."""
    val = {m: row.get(f"{m}_val_balanced") for m in methods}
    val = {m: v for m, v in val.items() if v is not None and np.isfinite(v)}
    return max(val, key=lambda m: (val[m], -methods.index(m))) if val else None


def check_metric(by: str) -> None:
    """Raise UsageError unless ``by`` is one of ``METRICS``."""
    if by not in METRICS:
        raise UsageError(f"{arg('by', by)} is not a metric column; choose one of {METRICS}")


def rank_rows(rows: list[dict], by: str) -> list[dict]:
    """Rows sorted best first by column ``by`` (NaN and missing last, failed backbones
    after every scored one with rank None), each given its ``rank``."""
    check_metric(by)

    def key(r: dict) -> tuple:
        v = r.get(by)
        good = v is not None and np.isfinite(v)
        return (not is_ok(r), -v if good else np.inf, r["backbone"])

    return [{"rank": n + 1 if is_ok(r) else None, **r} for n, r in enumerate(sorted(rows, key=key))]
